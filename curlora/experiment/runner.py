"""One continual-learning run: the paper's protocol for any method, model and task list.

perplexity of the original LM → for each task in order: a new task head (in place of the LM
head), train adapter + head, evaluate this and every earlier task with its own head, measure
perplexity with the original LM head, record per-layer change. The adapter (e.g. CURLoRA's U)
keeps training across tasks; its frozen parts (C, R) are drawn once.

Every finished task is saved in the run's cache folder, so a second call returns instantly and
an interrupted run resumes from the last finished task. A run whose task order begins like
another's (wiki → movie → tweets and wiki → tweets → movie) copies those shared first stages
instead of training them again: a stage depends on the tasks after it only through whether
perplexity is measured there, and the stage's key carries that. A run's timings include the
recorded cost of stages it reloaded or copied, so they say what the run costs from scratch.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from curlora.analysis import layer_stats, output_shift
from curlora.counting import trainable_parameters
from curlora.data import load_corpus, load_task
from curlora.data.offline import wiki_calibration_text
from curlora.experiment import stages
from curlora.experiment.batches import training_plan
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.evaluate import probabilities, scores
from curlora.experiment.head_only import head_only_records
from curlora.experiment.heads import TaskModel, has_active_dropout, new_head, task_seed
from curlora.experiment.machine import environment
from curlora.experiment.precision import DTYPES, FrozenCast, mixed_precision
from curlora.experiment.records import StageRecord
from curlora.experiment.results import Results
from curlora.experiment.spec import ExperimentSpec
from curlora.experiment.train import train_task
from curlora.inject import adapter_layers, apply_adapter
from curlora.methods import method
from curlora.models import load_model
from curlora.perplexity import corpus_ids, from_nll, perplexity_windows, sample_windows

#: Held-out text for the per-layer output shift: this many tokens from each of the first
#: perplexity windows (so it samples the corpus the same way).
SHIFT_WINDOWS, SHIFT_TOKENS = 4, 64
#: Calibration text for methods that read what the model knows before injection (CorDA's input
#: covariance): rows × tokens of held-in Wikipedia. 16,384 tokens are 28 per input feature of
#: SmolLM2's 576 (a full-rank covariance); PEFT's CorDA guidance is about 64 per feature, which
#: would cost a forward pass over four times the text.
CALIBRATION_ROWS, CALIBRATION_LENGTH = 64, 256


def calibration_ids(tokenizer) -> torch.Tensor:
    """Token ids (rows × length) of held-in Wikipedia, never the perplexity corpus."""
    ids = corpus_ids(tokenizer, wiki_calibration_text())
    needed = CALIBRATION_ROWS * CALIBRATION_LENGTH
    if len(ids) < needed:
        raise ValueError(
            f"The held-in Wikipedia calibration text has {len(ids):,} tokens with this "
            f"tokenizer; calibration needs {needed:,}."
        )
    return ids[:needed].view(CALIBRATION_ROWS, CALIBRATION_LENGTH)


def adapted_model(spec: ExperimentSpec | DomainSpec) -> tuple[nn.Module, object]:
    """The spec's model and tokenizer: frozen, with its method's adapter injected (the seed's
    draw; a method that reads the model first, CorDA, calibrated on held-in Wikipedia)."""
    lm, tok = load_model(spec.model, dtype=DTYPES[spec.dtype])
    lm.set_attn_implementation(spec.attention)
    apply_adapter(
        lm,
        spec.method,
        spec.rank,
        spec.alpha,
        list(spec.target_modules)
        if isinstance(spec.target_modules, tuple)
        else spec.target_modules,
        spec.sampling,
        seed=spec.seed,
        split_fused=spec.split_fused,
        calibration=calibration_ids(tok) if method(spec.method).before_inject else None,
    )
    return lm, tok


def run(
    spec: ExperimentSpec,
    cache: bool = True,
    progress: bool = True,
    stop_after_task: int | None = None,
) -> Results | None:
    """Run (or load from the cache, or resume) the experiment ``spec``; returns its Results.

    ``stop_after_task=i`` returns None after task i is saved, as an interruption would.
    """
    from accelerate import PartialState

    folder = stages.run_folder(spec)
    if not cache:
        return _Run(spec, None, progress).execute(stop_after_task)
    state = PartialState(cpu=not torch.cuda.is_available())  # as _Run's Accelerator
    # Under torchrun every process reads after the barrier below, so all of them decide alike.
    if state.num_processes == 1 and (done := stages.read_results(folder)) is not None:
        return done
    # The processes of one torchrun run this spec together: the main one holds the lock for all
    # (a second process of the same run taking it would wait for the first one forever).
    with stages.claim(folder) if state.is_main_process else contextlib.nullcontext():
        state.wait_for_everyone()
        # Another worker may have finished this spec while we waited for the lock.
        if (done := stages.read_results(folder, repair=state.is_main_process)) is not None:
            return done
        return _Run(spec, folder, progress).execute(stop_after_task)


class PhaseTimer:
    """A run's wall time per phase (``self.timings``, the profile its results record)."""

    timings: dict[str, float]

    @contextlib.contextmanager
    def timer(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to ``phase``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - start


class _Run(PhaseTimer):
    """The state of one run while it executes (model, tasks, timings)."""

    def __init__(self, spec: ExperimentSpec, folder, progress: bool):
        from accelerate import Accelerator

        self.spec, self.folder = spec, folder
        self.timings: dict[str, float] = defaultdict(float)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.show = progress and self.accelerator.is_main_process
        with self.timer("load model and adapter"):
            self.lm, self.tok = adapted_model(spec)
            self.lm.to(self.accelerator.device)
            low = DTYPES[spec.autocast] if spec.autocast else None
            self.cast = FrozenCast(self.lm, low)
            # Where training starts (U = 0; LoRA's seeded A): the update is measured from here.
            self.start = {
                n: p.detach().clone() for n, p in self.lm.named_parameters() if p.requires_grad
            }
        with self.timer("load and tokenise tasks"):
            sizes = dict(
                train_size=spec.train_size, val_size=spec.val_size, eval_size=spec.eval_size
            )
            self.tasks = [load_task(t, seed=spec.seed, **sizes) for t in spec.tasks]
            self.encoded = [
                {s: t.encode(self.tok, s, spec.max_length) for s in ("train", "val", "eval")}
                for t in self.tasks
            ]
            self.corpus = load_corpus(spec.corpus)
            ids = corpus_ids(self.tok, self.corpus)
            windows = sample_windows(len(ids), spec.ppl_max_length, spec.ppl_windows)
            self.shift_ids = torch.stack(
                [
                    ids[b : b + SHIFT_TOKENS]
                    for b, e in windows[:SHIFT_WINDOWS]
                    if e - b >= SHIFT_TOKENS
                ]
                or [ids[:SHIFT_TOKENS]]
            )
        self.pad = self.tok.pad_token_id

    # ------------------------------------------------------------------ measurements

    def perplexity_nll(self) -> np.ndarray:
        with (
            self.timer("perplexity"),
            self.cast.active(),
            mixed_precision(self.accelerator.device, self.spec.autocast),
        ):
            return perplexity_windows(
                self.lm,
                self.tok,
                self.corpus,
                self.spec.ppl_mode,
                self.spec.ppl_max_length,
                self.spec.ppl_windows,
                batch_size=max(self.spec.eval_batch_size // 8, 1),
            )

    def initial_nll(self) -> np.ndarray:
        """The untouched model's per-window NLL, shared by every run with the same model and corpus."""
        spec = self.spec
        fields = (
            "model",
            "dtype",
            "autocast",
            "attention",
            "corpus",
            "ppl_mode",
            "ppl_windows",
            "ppl_max_length",
        )
        if self.folder is None:
            return self.perplexity_nll()
        path = stages.shared_path(spec, "initial-perplexity", fields, ".json")
        return np.asarray(
            stages.shared_json(
                path, lambda: {"nll": self.perplexity_nll().tolist()}, required=("nll",)
            )["nll"]
        )

    def accuracy_rows(
        self, stage: int, after: str, heads: list[nn.Linear], split: str, which: list[int]
    ) -> list[dict]:
        rows = []
        with self.timer("evaluate"), self.cast.active():
            for j in which:
                encoded = self.encoded[j][split]
                if not encoded:
                    continue
                probs = probabilities(
                    TaskModel(self.lm, heads[j]),
                    encoded,
                    self.spec.eval_batch_size,
                    self.pad,
                    self.spec.autocast,
                )
                rows.append(self.row(stage, after, j, split, scores(probs, encoded)))
        return rows

    def row(self, stage: int, after: str, j: int, split: str, scored: dict) -> dict:
        """One accuracy row: the task's split after a stage, with per-example scores for
        bootstraps (correctness as a 0/1 string; NLL and Brier to 4 significant digits)."""
        hits = scored["correct"]
        return {
            "stage": stage,
            "after_task": after,
            "task": self.tasks[j].name,
            "split": split,
            "accuracy": float(hits.mean()),
            "majority": self.tasks[j].majority_accuracy(split),
            "n": int(len(hits)),
            "correct": "".join("1" if h else "0" for h in hits),
            "nll": float(scored["nll"].mean()),
            "brier": float(scored["brier"].mean()),
            "example_nll": stages.rounded([float(v) for v in scored["nll"]]),
            "example_brier": stages.rounded([float(v) for v in scored["brier"]]),
        }

    def layer_rows(self, stage: int, after: str) -> list[dict]:
        with self.timer("layer statistics"):
            shift = output_shift(self.lm, self.shift_ids)
            moved = {
                name: sum(
                    float((p.detach() - self.start[f"{name}.{n}"]).double().pow(2).sum())
                    for n, p in layer.named_parameters()
                    if f"{name}.{n}" in self.start
                )
                for name, layer in adapter_layers(self.lm)
            }
            return [
                {
                    "stage": stage,
                    "after_task": after,
                    **row,
                    "output_shift": shift.get(row["layer"], 0.0),
                    # ‖θ − θ₀‖ of the layer's trainable tensors: the size of the step taken.
                    "update_norm": moved.get(row["layer"], 0.0) ** 0.5,
                }
                for row in layer_stats(self.lm)
            ]

    # ------------------------------------------------------------------ the protocol

    def execute(self, stop_after_task: int | None) -> Results | None:
        spec = self.spec
        initial = self.initial_nll()
        if spec.method == "head-only" and not has_active_dropout(self.lm):
            records, heads = head_only_records(self, initial)
        else:
            records, heads = self.sequence_records(stop_after_task)
            if records is None:
                return None
        perplexity = pd.DataFrame(
            [{"stage": 0, "after_task": None, "nll": initial.tolist()}]
            + [r.perplexity for r in records if r.perplexity["nll"] is not None]
        )
        perplexity["perplexity"] = [from_nll(n) for n in perplexity["nll"]]
        perplexity["ratio"] = perplexity["perplexity"] / perplexity["perplexity"].iloc[0]
        counts = trainable_parameters(self.lm)
        results = Results(
            spec,
            accuracy=pd.DataFrame([row for r in records for row in r.accuracy]),
            perplexity=perplexity[["stage", "after_task", "perplexity", "ratio", "nll"]],
            layers=pd.DataFrame(stages.rounded([row for r in records for row in r.layers])),
            loss=pd.DataFrame([row for r in records for row in r.loss]),
            parameters={
                "adapter": counts["adapter"],
                "head": sum(p.numel() for h in heads for p in h.parameters()),
            },
            timings=dict(self.timings),
            environment=environment(),
        )
        if self.folder is not None and self.accelerator.is_main_process:
            stages.write_results(self.folder, results)
        return results

    def new_head(self, j: int) -> nn.Linear:
        return new_head(
            self.lm, len(self.tasks[j].label_names), task_seed(self.spec.seed, self.tasks[j].name)
        )

    def plan(self, j: int) -> list[list[int]]:
        spec = self.spec
        lengths = [len(e["input_ids"]) for e in self.encoded[j]["train"]]
        steps = (
            spec.epochs * -(-len(lengths) // spec.batch_size)
            if spec.max_steps is None
            else spec.max_steps
        )
        return training_plan(
            lengths, spec.batch_size, task_seed(spec.seed, self.tasks[j].name), steps
        )

    def sequence_records(
        self, stop_after_task: int | None
    ) -> tuple[list[StageRecord] | None, list[nn.Linear]]:
        """Every task's stage record, reloading finished stages and training the rest in order."""
        records, heads = self.finished_stages()
        for i in range(len(records), len(self.tasks)):
            heads.append(self.new_head(i))
            records.append(self.train_stage(i, heads))
            if self.folder is not None and self.accelerator.is_main_process:
                self.save_stage(i, records[i], heads)
            self.accelerator.wait_for_everyone()
            if stop_after_task is not None and i >= stop_after_task:
                return None, heads
        return records, heads

    def finished_stages(self) -> tuple[list[StageRecord], list[nn.Linear]]:
        """The stages already in the cache (the run's own or copied from a run sharing its first
        tasks), with the adapter and their heads restored to where the last one left them."""
        records, tensors = [], {}
        if self.folder is not None:
            # One process repairs and copies; every process then reads the same finished stages.
            main = self.accelerator.is_main_process
            if main:
                done, _ = stages.load_stages(self.folder, len(self.tasks), repair=True)
                stages.adopt_stages(self.folder, self.spec, len(done))
            self.accelerator.wait_for_everyone()
            records, tensors = stages.load_stages(self.folder, len(self.tasks), repair=main)
        for record in records:
            # A reloaded or copied stage's compute counts too: timings are the run's full cost.
            for phase, seconds in (record.timings or {}).items():
                self.timings[phase] += seconds
        heads = [self.new_head(j) for j in range(len(records))]
        if records:
            self.restore(tensors, heads)
        return records, heads

    def restore(self, tensors: dict[str, torch.Tensor], heads: list[nn.Linear]) -> None:
        """Set the adapter and ``heads`` to a saved stage's tensors (as ``save_stage`` names them)."""
        params = dict(self.lm.named_parameters())
        with torch.no_grad():
            for k, v in tensors.items():
                if k.startswith("adapter."):
                    params[k.removeprefix("adapter.")].copy_(v)
            for j, head in enumerate(heads):
                head.load_state_dict(
                    {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"head{j}.")}
                )

    def train_stage(self, i: int, heads: list[nn.Linear]) -> StageRecord:
        """Train task ``i`` (adapter and its new head ``heads[i]``) and measure the stage it ends."""
        spec, task = self.spec, self.tasks[i]
        before = dict(self.timings)
        torch.manual_seed(task_seed(spec.seed, task.name))  # dropout and anything else global
        with self.timer("train"), self.cast.active():
            losses = train_task(
                self.accelerator,
                TaskModel(self.lm, heads[i]),
                self.encoded[i]["train"],
                self.plan(i),
                self.pad,
                spec,
                f"train {task.name}",
                self.show,
            )
        accuracy = self.accuracy_rows(i + 1, task.name, heads, "eval", list(range(i + 1)))
        # Every task so far on validation too: the operating rate is chosen on stability as well
        # as on learning, and only validation may choose it.
        accuracy += self.accuracy_rows(i + 1, task.name, heads, "val", list(range(i + 1)))
        nll = self.perplexity_nll().tolist() if spec.measures_perplexity_after(i) else None
        layers = self.layer_rows(i + 1, task.name)
        timings = {
            phase: seconds - before.get(phase, 0.0)
            for phase, seconds in self.timings.items()
            if seconds != before.get(phase, 0.0)
        }
        return StageRecord.after_task(i + 1, task.name, accuracy, nll, layers, losses, timings)

    def save_stage(self, i: int, record: StageRecord, heads: list[nn.Linear]) -> None:
        """Save stage ``i`` (its record, the adapter and every head so far) and publish it for
        runs whose task orders begin alike."""
        trainables = {f"adapter.{n}": p for n, p in self.lm.named_parameters() if p.requires_grad}
        for j, h in enumerate(heads):
            trainables.update({f"head{j}.{k}": v for k, v in h.state_dict().items()})
        stages.save_stage(self.folder, i, record, trainables)
        stages.publish_stage(self.folder, self.spec, i)

"""The continual-learning experiment: the paper's protocol for any method, model and task list.

perplexity of the original LM → for each task in order: a new task head (in place of the LM
head), train adapter + head, evaluate this and every earlier task with its own head, measure
perplexity with the original LM head, record per-layer change. The adapter (e.g. CURLoRA's U)
keeps training across tasks; its frozen parts (C, R) are drawn once.

Every finished task is saved (JSON + safetensors, atomically) in a folder keyed by the spec, so
a second call returns instantly and an interrupted run resumes from the last finished task.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from curlora import metrics
from curlora.analysis import layer_stats, output_shift
from curlora.cur import SAMPLING_MODES
from curlora.data import Collator, Task, load_corpus, load_task
from curlora.inject import METHODS, apply_adapter, trainable_parameters
from curlora.models import load_model
from curlora.storage import atomic_path, results_root, safe_name, write_text

SCHEDULES = ("constant", "cosine", "linear")
PPL_MODES = ("strided", "single")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that decides a run's result (and so its cache key)."""

    model: str = "smollm2-135m"
    method: str = "curlora"
    rank: int = 16
    alpha: float = 1.0
    sampling: str = "inverse"
    target_modules: tuple[str, ...] | None = None
    split_fused: bool = False
    tasks: tuple[str, ...] = ("wiki-pairs", "movie-snippets", "tweets-3class")
    train_size: int = 200
    eval_size: int = 100
    epochs: int = 1
    max_steps: int | None = None  # per task; None = epochs over train_size; 0 = no training
    lr: float = 1e-3
    head_lr: float | None = 5e-3  # None = ``lr`` for the head too, as the paper does
    schedule: str = "constant"
    warmup_steps: int = 0
    batch_size: int = 8
    # Length-sorted batches of 16: on a CPU, larger ones mostly add padding (benchmarks/NOTES.md).
    eval_batch_size: int = 16
    max_length: int = 48
    seed: int = 0
    dtype: str = "float32"
    autocast: str | None = None  # e.g. "bfloat16": mixed precision for training and evaluation
    corpus: str = "wiki-heldout"
    ppl_mode: str = "strided"
    ppl_tokens: int | None = 1024  # None = the whole corpus
    ppl_max_length: int = 512
    ppl_stride: int | None = None  # None = ppl_max_length (non-overlapping windows)

    def __post_init__(self) -> None:
        choices = {
            "method": METHODS,
            "sampling": SAMPLING_MODES,
            "schedule": SCHEDULES,
            "ppl_mode": PPL_MODES,
            "dtype": tuple(DTYPES),
        }
        choices["autocast"] = (None, "bfloat16", "float16")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is unknown; choose one of {', '.join(map(str, allowed))}."
                )
        positive = [
            "rank",
            "train_size",
            "eval_size",
            "epochs",
            "batch_size",
            "eval_batch_size",
            "max_length",
            "ppl_max_length",
        ]
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 0
        ):
            raise ValueError(f"max_steps must be None or an int ≥ 0, got {self.max_steps!r}.")
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if name == "head_lr" and value is None:
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}.")
        if not self.tasks:
            raise ValueError("tasks is empty; give at least one task name.")
        # Lists from JSON or the command line become tuples so specs stay hashable.
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.target_modules is not None and not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def replace(self, **changes) -> ExperimentSpec:
        """A copy with some fields changed."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"Unknown spec field(s) {sorted(unknown)}; fields: {', '.join(f.name for f in dataclasses.fields(self))}."
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable hash of every field: equal specs share results on disk."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:20]

    def label(self) -> str:
        """A short human name, e.g. 'curlora-r16-lr0.002-s0'."""
        extra = (
            "" if self.sampling == "inverse" or self.method != "curlora" else f"-{self.sampling}"
        )
        return f"{self.method}{extra}-r{self.rank}-lr{self.lr:g}-s{self.seed}"


#: The paper's §6 settings shared by both of its models (hub data, single-pass perplexity).
_PAPER_COMMON = dict(
    tasks=("glue/mrpc", "glue/sst2", "sentiment140-paper"),
    rank=16,
    eval_size=1000,
    eval_batch_size=50,
    epochs=3,
    lr=2.5e-4,
    head_lr=None,
    schedule="cosine",
    warmup_steps=500,
    corpus="wikitext-2",
    ppl_mode="single",
    ppl_tokens=None,
)
#: Named starting points. ``paper-*`` follow the paper's §6 (hub models and data, a GPU);
#: ``cpu`` is sized so 4 methods × 3 seeds fit the notebook budget on 2 cores.
PRESETS: dict[str, ExperimentSpec] = {
    "smoke": ExperimentSpec(
        model="tiny-llama",
        tasks=("wiki-pairs", "movie-snippets"),
        rank=4,
        train_size=32,
        eval_size=16,
        batch_size=8,
        eval_batch_size=16,
        max_length=32,
        lr=1e-2,
        head_lr=None,
        ppl_tokens=256,
        ppl_max_length=64,
    ),
    # bf16 autocast: 2.2× faster train steps on this CPU (avx512_bf16); perplexity stays fp32.
    "cpu": ExperimentSpec(autocast="bfloat16"),
    "cpu-full": ExperimentSpec(
        train_size=1000,
        eval_size=500,
        epochs=2,
        batch_size=16,
        max_length=96,
        ppl_tokens=16384,
        autocast="bfloat16",
    ),
    "paper-mistral": ExperimentSpec(
        model="mistralai/Mistral-7B-v0.3",
        train_size=1000,
        batch_size=8,
        max_length=512,
        dtype="bfloat16",
        ppl_max_length=32768,
        **_PAPER_COMMON,
    ),
    "paper-gpt2": ExperimentSpec(
        model="gpt2-large",
        train_size=5000,
        batch_size=32,
        max_length=256,
        ppl_max_length=1024,
        **_PAPER_COMMON,
    ),
}


def preset(name: str, **changes) -> ExperimentSpec:
    """A preset spec, optionally with fields changed."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name].replace(**changes)


@dataclass
class Results:
    """Everything one run recorded, as tidy DataFrames."""

    spec: ExperimentSpec
    accuracy: pd.DataFrame  # stage, after_task, task, accuracy, majority
    perplexity: pd.DataFrame  # stage, after_task, perplexity, ratio
    layers: pd.DataFrame  # stage, after_task, layer, weight_norm, delta_norm, delta_rel, ...
    loss: pd.DataFrame  # stage, task, step, loss
    parameters: dict = field(default_factory=dict)  # trainable adapter / head counts

    def accuracy_matrix(self) -> pd.DataFrame:
        """R[i][j]: rows = after training task i, columns = task j (NaN above the diagonal)."""
        tasks = list(self.spec.tasks)
        R = self.accuracy.pivot(index="after_task", columns="task", values="accuracy")
        return R.reindex(index=tasks, columns=tasks)

    def summary(self) -> dict:
        """ACC, BWT, Forgetting, perplexity before/after and their ratio, majority levels."""
        R = self.accuracy_matrix().to_numpy()
        ppl = self.perplexity["perplexity"].to_numpy()
        final = self.accuracy_matrix().iloc[-1]
        majority = self.accuracy.drop_duplicates("task").set_index("task")["majority"]
        return {
            "method": self.spec.method,
            "rank": self.spec.rank,
            "lr": self.spec.lr,
            "sampling": self.spec.sampling,
            "seed": self.spec.seed,
            "ACC": metrics.average_accuracy(R),
            "BWT": metrics.backward_transfer(R),
            "Forgetting": metrics.forgetting(R),
            "ppl_initial": float(ppl[0]),
            "ppl_final": float(ppl[-1]),
            "ppl_ratio": float(ppl[-1] / ppl[0]),
            **{f"final_acc:{t}": float(final[t]) for t in self.spec.tasks},
            **{f"own_acc:{t}": float(R[i, i]) for i, t in enumerate(self.spec.tasks)},
            **{f"majority:{t}": float(majority[t]) for t in self.spec.tasks},
            "adapter_params": self.parameters.get("adapter", 0),
            "head_params": self.parameters.get("head", 0),
        }

    def save(self, folder: Path) -> None:
        """Write results.json into ``folder`` atomically."""
        payload = {
            "spec": self.spec.to_dict(),
            "parameters": self.parameters,
            **{
                k: getattr(self, k).to_dict(orient="records")
                for k in ("accuracy", "perplexity", "layers", "loss")
            },
        }
        write_text(folder / "results.json", json.dumps(payload))

    @classmethod
    def load(cls, folder: Path) -> Results:
        """Read results.json from ``folder``."""
        payload = json.loads((folder / "results.json").read_text())
        frames = {k: pd.DataFrame(payload[k]) for k in ("accuracy", "perplexity", "layers", "loss")}
        return cls(ExperimentSpec(**payload["spec"]), parameters=payload["parameters"], **frames)


def results_dir(spec: ExperimentSpec) -> Path:
    """Where a spec's stages and results live (under the cache root, named by the spec key)."""
    return results_root() / safe_name(f"{spec.label()}-{spec.key()}")


class TaskModel(nn.Module):
    """The LM's backbone with a task head on the last real token's hidden state."""

    def __init__(self, lm: nn.Module, head: nn.Linear):
        super().__init__()
        self.backbone = lm.base_model
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # Right padding: the last real token sits at length − 1, not at position −1.
        last = attention_mask.sum(dim=1) - 1
        return self.head(
            hidden[torch.arange(len(hidden), device=hidden.device), last].to(self.head.weight.dtype)
        )


def new_head(lm: nn.Module, n_labels: int, seed: int) -> nn.Linear:
    """A fresh, seeded classification head (hidden → labels, with bias), as the paper adds per task."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(lm.config.hidden_size, n_labels)
    return head.to(next(lm.parameters()).device)


def _sorted_batches(task: Task, tok, split: str, batch_size: int, max_length: int):
    # Length-sorted batches waste almost no compute on padding; order does not change accuracy.
    encoded = sorted(task.encode(tok, split, max_length), key=lambda e: len(e["input_ids"]))
    collate = Collator(tok.pad_token_id)
    return [collate(encoded[i : i + batch_size]) for i in range(0, len(encoded), batch_size)]


def mixed_precision(device: torch.device, autocast: str | None):
    """``torch.autocast`` for ``autocast`` (a DTYPES name), or a no-op context when None."""
    return torch.autocast(device.type, dtype=DTYPES.get(autocast), enabled=autocast is not None)


@torch.no_grad()
def evaluate(
    model: TaskModel,
    task: Task,
    tok,
    batch_size: int,
    max_length: int,
    progress: bool = True,
    autocast: str | None = None,
) -> float:
    """Accuracy of ``model`` on the task's eval split, in length-sorted batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for batch in tqdm(
        _sorted_batches(task, tok, "eval", batch_size, max_length),
        desc=f"eval {task.name}",
        disable=not progress,
        leave=False,
    ):
        with mixed_precision(device, autocast):
            logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        correct += int((logits.argmax(-1).cpu() == batch["labels"]).sum())
    model.train(was_training)
    return correct / len(task.eval)


def _scheduler(optimizer, spec: ExperimentSpec, total_steps: int):
    from transformers import get_scheduler

    name = "constant_with_warmup" if spec.schedule == "constant" else spec.schedule
    return get_scheduler(
        name, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=total_steps
    )


def _trainables(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
    }


def run(
    spec: ExperimentSpec,
    cache: bool = True,
    progress: bool = True,
    stop_after_task: int | None = None,
) -> Results:
    """Run (or load from the cache, or resume) the experiment ``spec``; returns its Results.

    ``stop_after_task=i`` returns None after task i is saved, as an interruption would.
    """
    from accelerate import Accelerator

    folder = results_dir(spec)
    if cache and (folder / "results.json").is_file():
        return Results.load(folder)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), split_batches=True)
    show = progress and accelerator.is_main_process
    lm, tok = load_model(spec.model, dtype=DTYPES[spec.dtype])
    apply_adapter(
        lm,
        spec.method,
        spec.rank,
        spec.alpha,
        _targets(spec),
        spec.sampling,
        seed=spec.seed,
        split_fused=spec.split_fused,
    )
    lm.to(accelerator.device)
    tasks = [
        load_task(name, train_size=spec.train_size, eval_size=spec.eval_size, seed=spec.seed)
        for name in spec.tasks
    ]
    corpus = load_corpus(spec.corpus)

    def ppl() -> float:
        return metrics.perplexity(
            lm,
            tok,
            corpus,
            spec.ppl_mode,
            spec.ppl_max_length,
            spec.ppl_stride or spec.ppl_max_length,
            spec.ppl_tokens,
            batch_size=spec.eval_batch_size // 8 or 1,
        )

    stages = _load_stages(folder, lm, tasks) if cache else []
    heads = [stage["head"] for stage in stages]
    initial_ppl = _initial_perplexity(spec, ppl) if cache else ppl()
    initial = {"stage": 0, "after_task": None, "perplexity": initial_ppl}
    records = [s["record"] for s in stages]
    for i in range(len(stages), len(tasks)):
        task = tasks[i]
        torch.manual_seed(spec.seed * 1000 + i)  # dropout and anything else global, per task
        head = new_head(lm, len(task.label_names), seed=spec.seed * 1000 + i)
        heads.append(head)
        losses = _train_task(accelerator, lm, head, task, tok, spec, i, show)
        accuracy = [
            {
                "stage": i + 1,
                "after_task": task.name,
                "task": t.name,
                "accuracy": evaluate(
                    TaskModel(lm, heads[j]),
                    t,
                    tok,
                    spec.eval_batch_size,
                    spec.max_length,
                    show,
                    spec.autocast,
                ),
                "majority": t.majority_accuracy(),
            }
            for j, t in enumerate(tasks[: i + 1])
        ]
        record = {
            "accuracy": accuracy,
            "perplexity": {"stage": i + 1, "after_task": task.name, "perplexity": ppl()},
            "layers": _layer_records(lm, tok, corpus, i + 1, task.name),
            "loss": [
                {"stage": i + 1, "task": task.name, "step": s, "loss": v}
                for s, v in enumerate(losses)
            ],
        }
        records.append(record)
        if accelerator.is_main_process and cache:
            _save_stage(folder, i, record, lm, heads)
        accelerator.wait_for_everyone()
        if stop_after_task is not None and i >= stop_after_task:
            return None
    counts = trainable_parameters(lm)
    counts["head"] = sum(p.numel() for h in heads for p in h.parameters())
    results = Results(
        spec,
        accuracy=pd.DataFrame([row for r in records for row in r["accuracy"]]),
        perplexity=pd.DataFrame([initial] + [r["perplexity"] for r in records]).assign(
            ratio=lambda d: d["perplexity"] / initial["perplexity"]
        ),
        layers=pd.DataFrame([row for r in records for row in r["layers"]]),
        loss=pd.DataFrame([row for r in records for row in r["loss"]]),
        parameters={"adapter": counts["adapter"], "head": counts["head"]},
    )
    if accelerator.is_main_process and cache:
        results.save(folder)
    return results


def _initial_perplexity(spec: ExperimentSpec, measure) -> float:
    """The untouched model's perplexity, shared by every run with the same model and corpus."""
    fields = ("model", "dtype", "corpus", "ppl_mode", "ppl_tokens", "ppl_max_length", "ppl_stride")
    key = json.dumps({f: getattr(spec, f) for f in fields}, sort_keys=True)
    path = results_root() / "initial-perplexity" / f"{safe_name(key)}.json"
    if path.is_file():
        return json.loads(path.read_text())["perplexity"]
    value = measure()
    write_text(path, json.dumps({"spec": key, "perplexity": value}))
    return value


def _layer_records(lm, tok, corpus: str, stage: int, task: str) -> list[dict]:
    shift = output_shift(lm, tok, corpus, max_tokens=128)
    return [
        {"stage": stage, "after_task": task, **row, "output_shift": shift.get(row["layer"], 0.0)}
        for row in layer_stats(lm)
    ]


def _targets(spec: ExperimentSpec):
    return (
        list(spec.target_modules) if isinstance(spec.target_modules, tuple) else spec.target_modules
    )


def _train_task(accelerator, lm, head, task, tok, spec, index, show) -> list[float]:
    module = TaskModel(lm, head)
    adapter = [p for p in lm.parameters() if p.requires_grad]
    groups = [{"params": adapter, "lr": spec.lr}] if adapter else []
    groups.append(
        {"params": list(head.parameters()), "lr": spec.lr if spec.head_lr is None else spec.head_lr}
    )
    loader = task.dataloader(
        tok, "train", spec.batch_size, spec.max_length, shuffle=True, seed=spec.seed * 1000 + index
    )
    steps = spec.epochs * len(loader) if spec.max_steps is None else spec.max_steps
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    scheduler = _scheduler(optimizer, spec, steps)
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    module.train()
    losses, step = [], 0
    bar = tqdm(total=steps, desc=f"train {task.name}", disable=not show, leave=False)
    while step < steps:
        for batch in loader:
            with mixed_precision(accelerator.device, spec.autocast):
                logits = module(batch["input_ids"], batch["attention_mask"])
            loss = nn.functional.cross_entropy(logits.float(), batch["labels"])
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(accelerator.reduce(loss.detach(), "mean")))
            step += 1
            bar.update()
            if step >= steps:
                break
    bar.close()
    accelerator.free_memory()
    lm.eval()
    return losses


def _save_stage(
    folder: Path, index: int, record: dict, lm: nn.Module, heads: list[nn.Linear]
) -> None:
    tensors = {f"adapter.{k}": v for k, v in _trainables(lm).items()}
    for j, h in enumerate(heads):
        tensors.update(
            {f"head{j}.{k}": v.detach().cpu().contiguous() for k, v in h.state_dict().items()}
        )
    # Tensors first, then the JSON that marks the stage finished: a stage counts only when both exist.
    with atomic_path(folder / f"stage{index}.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_text(folder / f"stage{index}.json", json.dumps(record))


def _load_stages(folder: Path, lm: nn.Module, tasks: list[Task]) -> list[dict]:
    """Reload finished stages (records and heads) and put the last one's adapter weights in place."""
    stages = []
    for i in range(len(tasks)):
        if not (
            (folder / f"stage{i}.json").is_file() and (folder / f"stage{i}.safetensors").is_file()
        ):
            break
        stages.append({"record": json.loads((folder / f"stage{i}.json").read_text())})
    if not stages:
        return []
    last = len(stages) - 1
    tensors = load_file(str(folder / f"stage{last}.safetensors"))
    params = dict(lm.named_parameters())
    with torch.no_grad():
        for k, v in tensors.items():
            if k.startswith("adapter."):
                params[k.removeprefix("adapter.")].copy_(v)
    for j, stage in enumerate(stages):
        head = new_head(lm, len(tasks[j].label_names), seed=0)
        head.load_state_dict(
            {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"head{j}.")}
        )
        stage["head"] = head
    return stages


def sweep_runs(specs: list[ExperimentSpec], seeds: list[int] | None = None, **kw) -> list[Results]:
    """Run every spec for every seed (cached runs load instantly)."""
    seeds = seeds if seeds is not None else [None]
    return [run(s if seed is None else s.replace(seed=seed), **kw) for s in specs for seed in seeds]


def summarise(results: list[Results], confidence: float = 0.95) -> pd.DataFrame:
    """One row per spec (seeds pooled): mean and CI half-width of every summary number."""
    rows = pd.DataFrame(
        [
            {**r.summary(), "spec": r.spec.replace(seed=0).label().rsplit("-s", 1)[0]}
            for r in results
        ]
    )
    numeric = [
        c
        for c in rows.columns
        if c not in ("method", "sampling", "spec", "seed", "rank", "lr")
        and pd.api.types.is_numeric_dtype(rows[c])
    ]
    out = []
    for (spec, method, sampling, rank, lr), group in rows.groupby(
        ["spec", "method", "sampling", "rank", "lr"], sort=False
    ):
        row = {
            "spec": spec,
            "method": method,
            "sampling": sampling,
            "rank": rank,
            "lr": lr,
            "n_seeds": len(group),
        }
        for c in numeric:
            mean, half = metrics.mean_ci(group[c].tolist(), confidence)
            row[f"{c}_mean"], row[f"{c}_ci"] = mean, half
        out.append(row)
    return pd.DataFrame(out)


def sweep(specs: list[ExperimentSpec], seeds: list[int], **kw) -> pd.DataFrame:
    """Run specs × seeds; one DataFrame with mean and 95% CI across seeds per spec."""
    return summarise(sweep_runs(specs, seeds, **kw))


def lr_sweep(
    base: ExperimentSpec,
    methods: list[str],
    lrs: list[float],
    seeds: list[int] | None = None,
    task: str | None = None,
    **kw,
) -> pd.DataFrame:
    """Stability–plasticity points: each method at each learning rate on one task.

    ``lr`` is the adapter's learning rate. With a separate ``head_lr`` the head-only control
    does not depend on it, so it runs once (one point: what the head alone reaches with no
    forgetting). Returns one row per (method, lr, seed): task accuracy, majority level,
    perplexity increase and mean ‖ΔW‖/‖W‖, for accuracy against forgetting, one curve per method.
    """
    single = base.replace(tasks=(task or base.tasks[0],))
    specs = [
        single.replace(method=m, lr=lr)
        for m in methods
        for lr in (lrs if m != "head-only" or single.head_lr is None else [single.lr])
    ]
    rows = []
    for r in sweep_runs(specs, seeds or [base.seed], **kw):
        s = r.summary()
        t = r.spec.tasks[0]
        rows.append(
            {
                "method": r.spec.method,
                "lr": r.spec.lr,
                "seed": r.spec.seed,
                "accuracy": s[f"final_acc:{t}"],
                "majority": s[f"majority:{t}"],
                "ppl_initial": s["ppl_initial"],
                "ppl_final": s["ppl_final"],
                "ppl_increase": s["ppl_final"] - s["ppl_initial"],
                "delta_rel": float(r.layers["delta_rel"].mean()) if len(r.layers) else 0.0,
            }
        )
    return pd.DataFrame(rows)


def format_results(results: Results) -> str:
    """The accuracy matrix, metrics and perplexities as text."""
    s = results.summary()
    R = results.accuracy_matrix()
    majority = results.accuracy.drop_duplicates("task").set_index("task")["majority"]
    lines = [
        f"run {results.spec.label()}  (adapter params {s['adapter_params']:,}, head params {s['head_params']:,})",
        "",
        "accuracy matrix R[after task i, task j]:",
        R.round(3).to_string(),
        "",
        "majority-class level: " + ", ".join(f"{t} {majority[t]:.3f}" for t in R.columns),
        "",
        f"ACC {s['ACC']:.3f}   BWT {s['BWT']:+.3f}   Forgetting {s['Forgetting']:+.3f}",
        "",
        "perplexity (" + results.spec.corpus + ", " + results.spec.ppl_mode + "):",
    ]
    for _, row in results.perplexity.iterrows():
        where = (
            "initial"
            if row["after_task"] is None
            or (isinstance(row["after_task"], float) and np.isnan(row["after_task"]))
            else f"after {row['after_task']}"
        )
        lines.append(f"  {where:<28} {row['perplexity']:9.3f}   ×{row['ratio']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run one experiment and print its accuracy matrix, metrics and perplexities."""
    parser = argparse.ArgumentParser(prog="python -m curlora.continual", description=main.__doc__)
    parser.add_argument("--preset", default="cpu", choices=list(PRESETS))
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--rank", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--sampling", choices=SAMPLING_MODES)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tasks", nargs="+")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, help="several methods: print a summary table"
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="several seeds: mean and 95%% CI")
    parser.add_argument(
        "--no-cache", action="store_true", help="ignore and do not write cached results"
    )
    args = parser.parse_args(argv)
    fixed = {"preset", "no_cache", "methods", "seeds"}
    changes = {k: v for k, v in vars(args).items() if k not in fixed and v is not None}
    spec = preset(args.preset, **changes)
    if args.methods or args.seeds:
        specs = [spec.replace(method=m) for m in (args.methods or [spec.method])]
        results = sweep_runs(specs, args.seeds or [spec.seed], cache=not args.no_cache)
        for r in results:
            print(format_results(r), end="\n\n")
        table = summarise(results)
        cols = ["spec", "n_seeds"] + [
            c
            for c in table.columns
            if c.endswith(("_mean", "_ci"))
            and c.split("_")[0] in ("ACC", "BWT", "Forgetting", "ppl")
        ]
        print(table[cols].round(4).to_string(index=False))
        return 0
    results = run(spec, cache=not args.no_cache)
    if results is not None:
        print(format_results(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

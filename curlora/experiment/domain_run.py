"""One continued-training run (protocol 2): adapt a language model to a target domain, and
measure what it learned and what it forgot in the same unit, nats per token.

NLL of the model as injected (the untouched model: every method starts at ΔW = 0 or, for
PiSSA/CorDA, at a residual that reproduces W) on four fixed window samples — the domain's
validation and evaluation files, held-in and held-out Wikipedia → train the adapter with the
model's own next-token loss (its LM head frozen) on ``steps`` batches of token blocks from the
domain's training files → the same four NLLs again. The first measurement is shared by every
run of the same model and windows. One process: this protocol's runs are small enough that a
sweep runs many at once instead (``run_many``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from curlora.counting import trainable_parameters
from curlora.data import load_corpus
from curlora.data.domains import load_domain
from curlora.data.offline import wiki_heldin_validation_text
from curlora.experiment import stages
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_spec import MEASURES, DomainSpec
from curlora.experiment.machine import environment
from curlora.experiment.precision import DTYPES, FrozenCast, mixed_precision
from curlora.experiment.runner import PhaseTimer, adapted_model
from curlora.experiment.train import lr_scheduler
from curlora.perplexity import corpus_ids, sample_windows, window_nll

#: The spec fields the untouched model's NLLs depend on (with the model's and domain's content).
INITIAL_FIELDS = (
    "model",
    "dtype",
    "autocast",
    "attention",
    "domain",
    "target_windows",
    "target_length",
    "corpus",
    "ppl_windows",
    "ppl_max_length",
    "general_val_windows",
)


def run_domain(spec: DomainSpec, cache: bool = True, progress: bool = True) -> DomainResults:
    """Run (or load from the cache) the continued-training run ``spec``; returns its results."""
    if not cache:
        return _DomainRun(spec, None, progress).execute()
    folder = stages.run_folder(spec)
    if (done := stages.read_results(folder, record=DomainResults)) is not None:
        return done
    with stages.claim(folder):
        # Another worker may have finished this spec while we waited for the lock.
        if (done := stages.read_results(folder, repair=True, record=DomainResults)) is not None:
            return done
        return _DomainRun(spec, folder, progress).execute()


class _DomainRun(PhaseTimer):
    """The state of one continued-training run while it executes."""

    def __init__(self, spec: DomainSpec, folder, progress: bool):
        self.spec, self.folder, self.show = spec, folder, progress
        self.timings: dict[str, float] = defaultdict(float)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        with self.timer("load model and adapter"):
            self.lm, self.tok = adapted_model(spec)
            self.lm.to(self.device)
            self.cast = FrozenCast(self.lm, DTYPES[spec.autocast] if spec.autocast else None)
        with self.timer("load and tokenise text"):
            self.domain = load_domain(spec.domain)
            self.samples = {
                "target-val": self._sample(
                    corpus_ids(self.tok, self.domain.heldout_text("val")),
                    spec.target_length,
                    spec.target_windows,
                ),
                "target-eval": self._sample(
                    corpus_ids(self.tok, self.domain.heldout_text("eval")),
                    spec.target_length,
                    spec.target_windows,
                ),
                "general-val": self._sample(
                    corpus_ids(self.tok, wiki_heldin_validation_text()),
                    spec.ppl_max_length,
                    spec.general_val_windows,
                ),
                "general-eval": self._sample(
                    corpus_ids(self.tok, load_corpus(spec.corpus)),
                    spec.ppl_max_length,
                    spec.ppl_windows,
                ),
            }
            self.blocks = self.domain.train_blocks(
                self.tok, spec.steps * spec.batch_size, spec.block_length, spec.seed
            )

    @staticmethod
    def _sample(ids: torch.Tensor, length: int, count: int) -> tuple[torch.Tensor, list]:
        return ids, sample_windows(len(ids), length, count)

    def _measured_digest(self) -> str:
        """A digest of every measure's token ids and windows."""
        digest = hashlib.sha256()
        for name in sorted(self.samples):
            ids, windows = self.samples[name]
            digest.update(name.encode())
            digest.update(ids.cpu().numpy().tobytes())
            digest.update(repr(windows).encode())
        return digest.hexdigest()[:16]

    def measure(self) -> dict[str, list[list[float]]]:
        """Per measure, the per-window [summed NLL, tokens] of the model as it stands."""
        pad = self.tok.pad_token_id or 0
        out = {}
        with (
            self.timer("measure"),
            self.cast.active(),
            mixed_precision(self.device, self.spec.autocast),
        ):
            for name in MEASURES:
                ids, windows = self.samples[name]
                nll = window_nll(self.lm, ids, windows, pad, self.spec.eval_batch_size)
                out[name] = nll.tolist()
        return out

    def initial(self) -> dict[str, list[list[float]]]:
        """The untouched model's NLLs, shared by every run that agrees on ``INITIAL_FIELDS``."""
        if self.folder is None:
            return self.measure()
        path = stages.shared_path(
            self.spec,
            "domain-initial",
            INITIAL_FIELDS,
            ".json",
            domain_source=self.spec.sources()["domain"],
            # The tokens and windows themselves: a change of split, window seed or text must
            # never pair a stored "before" with an "after" read on other windows.
            measured=self._measured_digest(),
            # Under autocast a residual start (PiSSA, CorDA) rounds unlike W itself: its
            # "before" is its own. In fp32 every method starts at the untouched model's output.
            start=[self.spec.method, self.spec.rank, self.spec.seed]
            if self.spec.autocast
            else None,
        )
        return stages.shared_json(path, self.measure, required=MEASURES)

    def train(self) -> list[float]:
        """Train the adapter on the domain's blocks with the LM's next-token loss."""
        spec = self.spec
        params = [p for p in self.lm.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"Method {spec.method!r} left nothing to train in {spec.model}.")
        optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
        scheduler = lr_scheduler(optimizer, spec, spec.steps)
        torch.manual_seed(spec.seed)  # dropout, where a model has it
        self.lm.train()
        losses = []
        with self.timer("train"), self.cast.active():
            for step in tqdm(range(spec.steps), desc="train", disable=not self.show, leave=False):
                batch = self.blocks[step * spec.batch_size : (step + 1) * spec.batch_size]
                batch = batch.to(self.device)
                with mixed_precision(self.device, spec.autocast):
                    loss = self.lm(input_ids=batch, labels=batch).loss
                loss.float().backward()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
        self.lm.eval()
        return losses

    def execute(self) -> DomainResults:
        before = self.initial()
        losses = self.train()
        after = self.measure()
        results = DomainResults(
            self.spec,
            nll={m: {"before": before[m], "after": after[m]} for m in MEASURES},
            loss=[float(f"{v:.5g}") for v in losses],
            parameters={"adapter": trainable_parameters(self.lm)["adapter"]},
            timings=dict(self.timings),
            environment=environment(),
        )
        if self.folder is not None:
            stages.write_results(self.folder, results)
        return results

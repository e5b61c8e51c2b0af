"""``ExperimentSpec``: everything that decides one continual-learning run's result.

Its cache key hashes every field plus the *content* its references point at (task data, a
local model's weights), so an edited file re-runs and an unchanged one reuses results. Its
group key is the same without the seed: runs that differ only by seed are replicates, and
nothing else is ever pooled with them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass

from curlora.cur import SAMPLING_RULES
from curlora.data import source_fingerprint, task_reference
from curlora.experiment.precision import DTYPES
from curlora.methods import REGISTRY
from curlora.models import model_fingerprint

SCHEDULES = ("constant", "cosine", "linear")
PPL_MODES = ("windows", "single")
PPL_STAGES = ("each", "final")
ATTENTION = ("eager", "sdpa")


class SpecFields:
    """What every kind of spec (a frozen dataclass) does with its fields."""

    def replace(self, **changes):
        """A copy with some fields changed."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"Unknown spec field(s) {sorted(unknown)}; fields: "
                f"{', '.join(f.name for f in dataclasses.fields(self))}."
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as plain JSON-able values."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ExperimentSpec(SpecFields):
    """Everything that decides a run's result (and so its cache key)."""

    model: str = "smollm2-135m"
    method: str = "curlora"
    rank: int = 16
    alpha: float = 1.0
    sampling: str = "inverse"
    target_modules: tuple[str, ...] | str | None = None
    split_fused: bool = False
    tasks: tuple[str, ...] = ("wiki-pairs", "movie-snippets", "tweets-3class")
    train_size: int = 200
    val_size: int = 100  # for choosing settings (e.g. learning rates); never reported as a result
    eval_size: int = 400  # the reported split: accuracy SE ≤ 0.025 at 400 examples
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
    autocast: str | None = (
        None  # e.g. "bfloat16": mixed precision for training, evaluation, perplexity
    )
    # Plain-matmul attention is faster than SDPA's CPU kernels at these lengths (NOTES.md).
    attention: str = "eager"
    corpus: str = "wiki-heldout"
    ppl_mode: str = "windows"
    ppl_windows: int | None = 8  # windows sampled across the whole corpus; None = every window
    ppl_max_length: int = 512
    ppl_stages: str = (
        "each"  # "each": after every task; "final": before and after the sequence (the paper)
    )

    def __post_init__(self) -> None:
        # Lists from JSON or the command line become tuples so specs stay hashable; Task objects
        # become registered references.
        object.__setattr__(self, "tasks", tuple(task_reference(t) for t in self.tasks))
        if self.target_modules is not None and not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        choices = {
            # The registries as they stand now, so a method or rule registered later is accepted.
            "method": tuple(REGISTRY),
            "sampling": tuple(SAMPLING_RULES),
            "schedule": SCHEDULES,
            "ppl_mode": PPL_MODES,
            "ppl_stages": PPL_STAGES,
            "dtype": tuple(DTYPES),
            "autocast": (None, "bfloat16", "float16"),
            "attention": ATTENTION,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is unknown; choose one of "
                    f"{', '.join(map(str, allowed))}."
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
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("val_size", self.val_size, minimum=0)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, minimum=0)
        if self.ppl_windows is not None:
            _check_int("ppl_windows", self.ppl_windows, minimum=1)
        for name in ("lr", "head_lr", "alpha"):
            if name != "head_lr" or self.head_lr is not None:
                check_number(name, getattr(self, name), negative=name == "alpha")
        if not self.tasks:
            raise ValueError("tasks is empty; give at least one task.")
        if len(set(self.tasks)) < len(self.tasks):
            raise ValueError(
                f"tasks {list(self.tasks)} name one task twice; each needs its own head."
            )

    def sources(self) -> dict:
        """Fingerprints of the content the spec refers to: each task's data and the model."""
        return {
            "tasks": [source_fingerprint(t) for t in self.tasks],
            "model": model_fingerprint(self.model),
        }

    def key(self) -> str:
        """A stable hash of every field and of the referenced content: equal keys share results."""
        return _hash({**self.to_dict(), "sources": self.sources()})

    def group_key(self) -> str:
        """The key without the seed: runs sharing it are replicates of one configuration."""
        fields = {k: v for k, v in self.to_dict().items() if k != "seed"}
        return _hash({**fields, "sources": self.sources()})

    def measures_perplexity_after(self, index: int) -> bool:
        """Whether the run measures perplexity after its task ``index`` (0-based)."""
        return self.ppl_stages == "each" or index == len(self.tasks) - 1

    def label(self) -> str:
        """A short human name, e.g. 'curlora-r16-lr0.002-s0'."""
        extra = (
            "" if self.sampling == "inverse" or self.method != "curlora" else f"-{self.sampling}"
        )
        return f"{self.method}{extra}-r{self.rank}-lr{self.lr:g}-s{self.seed}"


def check_number(name: str, value: object, negative: bool = False) -> None:
    """Refuse a value that is not a finite number (or is negative, unless ``negative``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value < 0 and not negative)
    ):
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}.")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}, got {value!r}.")


def _hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

"""``DomainSpec``: everything that decides one continued-training run's result (protocol 2).

The second protocol (Biderman et al. 2024, "LoRA Learns Less and Forgets Less") adapts a model
to a target domain by continued language-model training, and measures learning and forgetting
in the same unit: the target domain's held-out NLL drops (learning), held-out Wikipedia's rises
(forgetting), both in nats per token. Its key hashes every field and the content of the model
and the domain, as ``ExperimentSpec``'s does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curlora.cur import SAMPLING_RULES
from curlora.data.domains import DOMAINS, load_domain
from curlora.experiment.precision import DTYPES
from curlora.experiment.spec import (
    ATTENTION,
    SCHEDULES,
    SpecFields,
    _check_int,
    _hash,
    check_number,
)
from curlora.methods import REGISTRY
from curlora.models import model_fingerprint

#: What is measured before and after training, each on its own fixed windows: the target
#: domain's validation and evaluation files, held-in Wikipedia (validation of what the model
#: knew: it chooses rates, never reported) and held-out Wikipedia (reported forgetting).
MEASURES = ("target-val", "target-eval", "general-val", "general-eval")


@dataclass(frozen=True)
class DomainSpec(SpecFields):
    """Everything that decides a continued-training run's result (and so its cache key)."""

    model: str = "smollm2-135m"
    method: str = "curlora"
    rank: int = 16
    alpha: float = 1.0
    sampling: str = "inverse"
    target_modules: tuple[str, ...] | str | None = None
    split_fused: bool = False
    domain: str = "python-stdlib"
    steps: int = 32
    batch_size: int = 8
    block_length: int = 128
    lr: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    seed: int = 0
    dtype: str = "float32"
    autocast: str | None = None
    attention: str = "eager"
    #: Windows of the target domain's held-out files (validation and evaluation alike).
    target_windows: int = 32
    target_length: int = 256
    #: Held-out Wikipedia: the reported forgetting (the same windows as protocol 1's study).
    corpus: str = "wiki-heldout"
    ppl_windows: int = 32
    ppl_max_length: int = 512
    #: Held-in Wikipedia windows that validate forgetting when choosing the operating rate.
    general_val_windows: int = 16
    eval_batch_size: int = 2

    def __post_init__(self) -> None:
        # A folder is named by its absolute path, resolved where the spec is made (a notebook
        # and the suite's runner work in different folders).
        if self.domain not in DOMAINS and Path(self.domain).expanduser().is_dir():
            object.__setattr__(self, "domain", str(Path(self.domain).expanduser().resolve()))
        if self.target_modules is not None and not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        choices = {
            "method": tuple(m for m in REGISTRY if m != "head-only"),
            "sampling": tuple(SAMPLING_RULES),
            "schedule": SCHEDULES,
            "dtype": tuple(DTYPES),
            "autocast": (None, "bfloat16", "float16"),
            "attention": ATTENTION,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                extra = (
                    " (head-only has no head to train here: continued training adapts the "
                    "language model itself)"
                    if getattr(self, name) == "head-only"
                    else ""
                )
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is unknown; choose one of "
                    f"{', '.join(map(str, allowed))}{extra}."
                )
        for name in (
            "rank",
            "steps",
            "batch_size",
            "block_length",
            "target_windows",
            "target_length",
            "ppl_windows",
            "ppl_max_length",
            "general_val_windows",
            "eval_batch_size",
        ):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("warmup_steps", self.warmup_steps, minimum=0)
        check_number("lr", self.lr)
        check_number("alpha", self.alpha, negative=True)

    def sources(self) -> dict:
        """Fingerprints of the content the spec refers to: the domain's files and the model."""
        return {
            "domain": load_domain(self.domain).fingerprint(),
            "model": model_fingerprint(self.model),
        }

    def _keyed(self) -> dict:
        # A folder domain is keyed on its name and content, not on where it lies.
        return {**self.to_dict(), "domain": load_domain(self.domain).name}

    def key(self) -> str:
        """A stable hash of every field and of the referenced content: equal keys share results."""
        return _hash({"protocol": "domain", **self._keyed(), "sources": self.sources()})

    def group_key(self) -> str:
        """The key without the seed: runs sharing it are replicates of one configuration."""
        fields = {k: v for k, v in self._keyed().items() if k != "seed"}
        return _hash({"protocol": "domain", **fields, "sources": self.sources()})

    def label(self) -> str:
        """A short human name, e.g. 'domain-curlora-r16-lr0.001-s0'."""
        extra = (
            "" if self.sampling == "inverse" or self.method != "curlora" else f"-{self.sampling}"
        )
        return f"domain-{self.method}{extra}-r{self.rank}-lr{self.lr:g}-s{self.seed}"

    @property
    def training_tokens(self) -> int:
        """Tokens the run trains on: steps × batch × block."""
        return self.steps * self.batch_size * self.block_length

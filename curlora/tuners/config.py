"""Configurations of CURLoRA and its r×r SVD peer as PEFT methods (``peft.PeftConfig`` dataclasses).

PEFT 0.21's ``PeftType`` enum is closed to outside packages, but its mapping tables accept a
plain string ``peft_type`` (PEFT issue #2634 / PR #2635; save/load checks of PR #3490), which
is the route taken here: each config sets its string type, and ``curlora.tuners`` registers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from peft.config import PeftConfig

from curlora.cur import SAMPLING_RULES


@dataclass
class FactoredConfig(PeftConfig):
    """Settings shared by the adapters of the form W + alpha·C·U·R with a trainable r×r U."""

    r: int = field(default=16, metadata={"help": "Rank: columns/rows in C and R; U is r×r."})
    alpha: float = field(default=1.0, metadata={"help": "Scale of the update (paper: 1)."})
    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Module names (suffix match) or one regex (full match); None = the "
            "architecture's Q/K/V preset (curlora.targets.ATTENTION_PRESETS)."
        },
    )
    split_fused: bool = field(
        default=False,
        metadata={"help": "Give each block of a fused Q/K/V layer (GPT-2 c_attn) its own C, U, R."},
    )
    modules_to_save: list[str] | None = field(
        default=None,
        metadata={"help": "Other modules to train and save, e.g. a classification head."},
    )

    #: The string ``peft_type`` this config registers under (set by subclasses).
    PEFT_TYPE = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = self.PEFT_TYPE
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r (the rank) must be a positive int, got {self.r!r}.")
        if (
            isinstance(self.alpha, bool)
            or not isinstance(self.alpha, (int, float))
            or not math.isfinite(self.alpha)
        ):
            raise ValueError(f"alpha must be a finite number, got {self.alpha!r}.")
        self.alpha = float(self.alpha)
        if isinstance(self.target_modules, (set, tuple)):
            # Sorted so the saved adapter_config.json is the same on every run.
            self.target_modules = sorted(self.target_modules)

    def settings(self, split: int) -> dict:
        """What a layer built from this config must agree on with a saved adapter to load it."""
        return {"method": self.PEFT_TYPE.lower(), "r": self.r, "alpha": self.alpha, "split": split}


@dataclass
class CURLoRAConfig(FactoredConfig):
    """CURLoRA (Fawi 2024): C, R are r sampled columns and rows of W; only U (r×r, from zero) trains."""

    sampling: str = field(
        default="inverse",
        metadata={
            "help": "inverse (paper eq. 4), inverse_eps (the reference code), norm (classical "
            "CUR), uniform, or lowest (the r smallest-norm columns/rows)."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of the column/row sampling (per layer, by name)."}
    )

    PEFT_TYPE = "CURLORA"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in SAMPLING_RULES:
            raise ValueError(
                f"Unknown sampling mode {self.sampling!r}; choose one of {', '.join(SAMPLING_RULES)}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}.")

    def settings(self, split: int) -> dict:
        return {**super().settings(split), "sampling": self.sampling}


@dataclass
class SVDPeerConfig(FactoredConfig):
    """The r×r SVD peer (LoRA-XS recipe, Bałazy et al. 2024): C = U_r·Σ_r, R = V_rᵀ, only U trains."""

    PEFT_TYPE = "SVDPEER"

"""An arm of a study: one method variant (method, sampling rule, rank), read from and written as
one short name (``curlora``, ``curlora-norm``, ``lora-r1``, ``svd``, ``head-only``).

Every consumer — the design, the study, the findings, the figures, the notebooks — asks an
``Arm`` for its name, display name, role and colour; what differs between methods is their
``curlora.methods.REGISTRY`` entry, and between sampling rules their ``curlora.cur.SAMPLING_RULES``
entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from curlora.cur import SAMPLING_RULES
from curlora.methods import REGISTRY, method

#: The sampling rule an arm name leaves out: the paper's eq. 4.
DEFAULT_SAMPLING = "inverse"
#: Colours of arms at another rank than the study's, which read as their own series.
RANK_COLORS = {"lora": "C1"}


@dataclass(frozen=True)
class Arm:
    """One method variant of a study; ``rank`` None means the study's base rank."""

    method: str
    sampling: str = DEFAULT_SAMPLING
    rank: int | None = None

    def __post_init__(self) -> None:
        entry = method(self.method)
        if self.sampling not in SAMPLING_RULES or (
            self.sampling != DEFAULT_SAMPLING and not entry.samples
        ):
            samplers = [m for m, e in REGISTRY.items() if e.samples]
            raise ValueError(
                f"Sampling {self.sampling!r} is not one of {', '.join(SAMPLING_RULES)}, or "
                f"{self.method} draws no columns (sampling applies to {', '.join(samplers)})."
            )

    @classmethod
    def parse(cls, name: str) -> Arm:
        """The arm a name stands for, e.g. 'lora-r1' → Arm('lora', rank=1)."""
        if name in REGISTRY:
            return cls(name)
        first, *rest = name.split("-")
        if first not in REGISTRY:
            raise ValueError(
                f"Arm {name!r}: unknown method {first!r}; arms look like curlora, curlora-norm, "
                f"lora, lora-r1, svd or head-only (methods: {', '.join(REGISTRY)})."
            )
        sampling, rank = DEFAULT_SAMPLING, None
        for part in rest:
            if part in SAMPLING_RULES and REGISTRY[first].samples:
                sampling = part
            elif part.startswith("r") and part[1:].isdigit():
                rank = int(part[1:])
            else:
                raise ValueError(
                    f"Arm {name!r}: {part!r} is neither a rank (r8) nor a CURLoRA sampling mode "
                    f"({', '.join(SAMPLING_RULES)})."
                )
        return cls(first, sampling, rank)

    @classmethod
    def of_spec(cls, spec, base_rank: int | None = None) -> Arm:
        """The arm of a run's spec; its rank is named only where it differs from ``base_rank``."""
        if spec.method == "head-only":
            return cls("head-only")
        rank = spec.rank if base_rank is not None and spec.rank != base_rank else None
        return cls(spec.method, spec.sampling, rank)

    @property
    def name(self) -> str:
        """The arm's short name, e.g. 'curlora-norm', 'lora-r1' (``parse`` reads it back)."""
        parts = [self.method]
        if self.sampling != DEFAULT_SAMPLING:
            parts.append(self.sampling)
        if self.rank is not None:
            parts.append(f"r{self.rank}")
        return "-".join(parts)

    @property
    def display(self) -> str:
        """A reader's name: 'LoRA r1', 'CURLoRA (norm sampling)'."""
        extra = [f"({self.sampling} sampling)"] if self.sampling != DEFAULT_SAMPLING else []
        extra += [f"r{self.rank}"] if self.rank is not None else []
        return " ".join([REGISTRY[self.method].display, *extra])

    @property
    def role(self) -> str:
        """'subject', 'peer', 'ablation' or 'control': what the arm is in a study (its method's
        role; CURLoRA with another sampling rule is an ablation of CURLoRA)."""
        if self.sampling != DEFAULT_SAMPLING:
            return "ablation"
        return REGISTRY[self.method].role

    @property
    def color(self) -> str:
        """The arm's colour, the same in every figure."""
        if self.sampling != DEFAULT_SAMPLING:
            return SAMPLING_RULES[self.sampling].color
        if self.rank is not None and self.method in RANK_COLORS:
            return RANK_COLORS[self.method]
        return REGISTRY[self.method].color

    def changes(self) -> dict:
        """The spec fields the arm sets, e.g. lora-r1 → {'method': 'lora', 'rank': 1}."""
        out: dict = {"method": self.method}
        if self.sampling != DEFAULT_SAMPLING:
            out["sampling"] = self.sampling
        if self.rank is not None:
            out["rank"] = self.rank
        return out

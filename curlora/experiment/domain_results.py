"""What one continued-training run (protocol 2) recorded, and learning and forgetting in nats."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curlora.experiment.domain_spec import MEASURES, DomainSpec


@dataclass
class DomainResults:
    """Everything one continued-training run recorded.

    ``nll``: per measure (``domain_spec.MEASURES``) and moment ('before', 'after'), per-window
    [summed NLL, tokens] — the same windows for every run, so changes pair window by window.
    ``loss``: the training loss per step (nats per token). ``parameters``: trainable counts.
    """

    spec: DomainSpec
    nll: dict[str, dict[str, list[list[float]]]]
    loss: list[float]
    parameters: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [
            f"{m}/{when}"
            for m in MEASURES
            for when in ("before", "after")
            if when not in self.nll.get(m, {})
        ]
        if missing:
            raise KeyError(f"The run's record lacks the NLL of {', '.join(missing)}.")

    def windows(self, measure: str) -> tuple[np.ndarray, np.ndarray]:
        """Per window of ``measure``: the change in summed NLL (after − before), and its tokens."""
        before = np.asarray(self.nll[measure]["before"], dtype=float).reshape(-1, 2)
        after = np.asarray(self.nll[measure]["after"], dtype=float).reshape(-1, 2)
        # A change is only a change if both sides scored the same tokens of the same windows.
        if before.shape != after.shape or not np.array_equal(before[:, 1], after[:, 1]):
            raise ValueError(
                f"The run's {measure} NLLs before and after training cover different windows "
                f"or token counts ({len(before)} and {len(after)} windows); the record is not "
                "a paired measurement. Re-run it (delete its folder under the results cache)."
            )
        return after[:, 0] - before[:, 0], before[:, 1]

    @property
    def broke(self) -> bool:
        """Whether training diverged: a training loss or an NLL after training is not a number
        (the weights then hold NaN or inf, so nothing measured after is meaningful)."""
        after = [np.asarray(self.nll[m]["after"], dtype=float) for m in MEASURES]
        return not (np.isfinite(self.loss).all() and all(np.isfinite(a).all() for a in after))

    def change(self, measure: str) -> float:
        """Mean NLL change per token on ``measure``, in nats (the log of the perplexity ratio)."""
        delta, tokens = self.windows(measure)
        return float(delta.sum() / tokens.sum())

    def per_token(self, measure: str, when: str = "after") -> float:
        """Mean NLL per token on ``measure`` before or after training, in nats."""
        nll = np.asarray(self.nll[measure][when], dtype=float).reshape(-1, 2)
        return float(nll[:, 0].sum() / nll[:, 1].sum())

    def learning(self, split: str = "val") -> float:
        """Target-domain NLL lost on held-out files, nats per token (larger is more learning)."""
        return -self.change(f"target-{split}")

    def forgetting(self, split: str = "eval") -> float:
        """Wikipedia NLL gained, nats per token (held-out for 'eval', held-in for 'val')."""
        return self.change(f"general-{split}")

    def selection_score(self) -> float:
        """Validation NLL after training, mean of target domain and held-in Wikipedia (lower is
        better): what the plan's operating rate minimises, learning and keeping alike."""
        return 0.5 * (self.per_token("target-val") + self.per_token("general-val"))

    def summary(self) -> dict:
        """The run's headline numbers (nats per token; ratios are their exponentials)."""
        return {
            "learning_val": self.learning("val"),
            "learning_eval": self.learning("eval"),
            "forgetting_val": self.forgetting("val"),
            "forgetting_eval": self.forgetting("eval"),
            "target_ppl_before": float(np.exp(self.per_token("target-eval", "before"))),
            "target_ppl_after": float(np.exp(self.per_token("target-eval"))),
            "wiki_ppl_ratio": float(np.exp(self.forgetting("eval"))),
            "trainable": self.parameters.get("adapter"),
            "final_loss": self.loss[-1] if self.loss else float("nan"),
        }

    def to_payload(self) -> dict:
        """Everything as JSON-able values."""
        return {
            "protocol": "domain",
            "spec": self.spec.to_dict(),
            "nll": self.nll,
            "loss": self.loss,
            "parameters": self.parameters,
            "timings": self.timings,
            "environment": self.environment,
        }

    @classmethod
    def from_payload(cls, payload: dict) -> DomainResults:
        """The inverse of ``to_payload``; raises KeyError/TypeError on a malformed payload."""
        if payload.get("protocol") != "domain":
            raise KeyError("not a continued-training (protocol 2) record")
        return cls(
            DomainSpec(**payload["spec"]),
            nll=payload["nll"],
            loss=payload["loss"],
            parameters=payload["parameters"],
            timings=payload.get("timings", {}),
            environment=payload.get("environment", {}),
        )

"""The stability outcomes a study reads, one entry each: how a run gives it, and how it is shown.

A value is kept on its *analysis scale* (perplexity ratios as logs, so seeds average
geometrically and differences are ratios of ratios) and shown on its *display scale*
(``shown``: a ratio back as a ratio, forgetting in accuracy points). Verdicts and figures name
the outcomes they read, so adding one here changes nothing already published.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curlora.experiment.results import Results


@dataclass(frozen=True)
class Outcome:
    """One stability outcome of a run."""

    key: str
    description: str  # in a sentence: "perplexity ratio (after / before)"
    axis_label: str  # on a figure's axis
    #: "ratio": kept as a log, shown as a factor or percent change; "additive": as it is.
    scale: str
    unit: str  # of the display scale: "", " pts"
    digits: int  # decimals a reading prints
    #: (run, tasks or None) → the value on the analysis scale; tasks limit forgetting to them.
    of_run: Callable[[Results, list[str] | None], float]

    def shown(self, value: float) -> float:
        """A value (or array) on the analysis scale, on the display scale."""
        if self.scale == "ratio":
            return np.exp(value)
        return value * 100 if self.unit == " pts" else value


def _log_ppl_ratio(run: Results, tasks: list[str] | None) -> float:
    return math.log(run.summary()["ppl_ratio"])


def _output_shift(run: Results, tasks: list[str] | None) -> float:
    return run.summary()["output_shift"]


def _forgetting(run: Results, tasks: list[str] | None) -> float:
    """Accuracy right after training each earlier task minus after the last one (eval split)."""
    keep = [t for t in run.task_names[:-1] if tasks is None or t in tasks]
    if not keep:
        return math.nan
    R = run.accuracy_matrix()
    return float(np.mean([R.loc[t, t] - R.iloc[-1][t] for t in keep]))


OUTCOMES: dict[str, Outcome] = {
    o.key: o
    for o in (
        Outcome(
            "ppl_ratio",
            "perplexity ratio (after / before)",
            "perplexity after / before",
            "ratio",
            "",
            2,
            _log_ppl_ratio,
        ),
        Outcome(
            "forgetting",
            "forgetting of learned tasks (accuracy points lost)",
            "forgetting, learned tasks (points)",
            "additive",
            " pts",
            2,
            _forgetting,
        ),
        Outcome(
            "output_shift",
            "mean output shift of adapted layers",
            "output shift (mean over layers)",
            "additive",
            "",
            4,
            _output_shift,
        ),
    )
}
#: The outcomes the published equal-learning verdicts and frontier figures read, named once.
STABILITY = ("ppl_ratio", "forgetting", "output_shift")


def outcome(key: str) -> Outcome:
    """The registry entry of ``key``, or an error listing the known outcomes."""
    if key not in OUTCOMES:
        raise ValueError(f"Unknown outcome {key!r}; choose one of {', '.join(OUTCOMES)}.")
    return OUTCOMES[key]

"""A study reduced to the arrays its inference resamples: per arm, rate and seed.

Every quantity is per seed (averaged over task orders within the seed, as ``Study.per_seed``),
so resampling seeds is resampling rows. Perplexity is kept per window — each cell holds the
change in summed NLL on every window — because every run reads the same windows: resampling
them once per replicate, for all runs together, carries the window sample's noise into every
contrast. Which plasticity axis and which selection rule the runs allowed is recorded beside
the plan's, so a page can state each deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from curlora.design_check import DesignCheck, paper_check
from curlora.experiment.results import Results
from curlora.outcomes import outcome
from curlora.plan import AnalysisPlan
from curlora.study import Study

Cell = tuple[str, float]


@dataclass(frozen=True)
class Cells:
    """Per-seed arrays of a study (NaN where a seed lacks a run)."""

    seeds: tuple[int, ...]
    rates: dict[str, tuple[float, ...]]
    #: Plasticity per axis ("nll", "brier", "accuracy"; "eval-accuracy" on the reported split).
    x: dict[str, dict[Cell, np.ndarray]]
    #: The operating-rate score (higher is better) of the rule in ``selection``.
    score: dict[Cell, np.ndarray]
    #: Outcomes that average across seeds as they are: forgetting, output shift, final ACC.
    additive: dict[str, dict[Cell, np.ndarray]]
    #: Change in summed NLL per perplexity window, (seeds, windows), and the windows' tokens.
    windows: dict[Cell, np.ndarray]
    tokens: np.ndarray
    axis: str  # the plasticity axis frontiers use
    selection: str  # the selection rule applied
    #: Where the analysis had to leave the plan's rules (axis, selection), as phrases.
    deviations: tuple[str, ...] = field(default=())
    #: How the runs read stand against the plan's design (settings, orders, seeds, rates).
    design: DesignCheck = field(default=DesignCheck())
    #: The earlier tasks the forgetting outcome averages over (every task not trained last).
    forgetting_tasks: tuple[str, ...] = ()
    #: How a reader names the plasticity axis, where it is not a gain over head-only.
    x_label: str | None = None
    #: Per cell, the seeds whose run there broke (``Results.broke``): they count as run, and a
    #: mean that draws one is undefined, so the rate leaves the frontier and is never chosen.
    broken: dict[Cell, np.ndarray] = field(default_factory=dict)

    @property
    def arms(self) -> list[str]:
        return list(self.rates)

    @property
    def plasticity_label(self) -> tuple[str, float]:
        """The plasticity axis as a reader names it, and the factor its values are shown at."""
        name, scale = _AXIS_NAMES[self.axis]
        return self.x_label or f"plasticity: {name} over head-only", scale


#: Each plasticity axis's name and the factor its values are shown at.
_AXIS_NAMES = {
    "nll": ("NLL drop (nats)", 1),
    "brier": ("Brier drop", 1),
    "accuracy": ("accuracy gain (pts)", 100),
}


def _own(run: Results, split: str, column: str) -> dict[str, float]:
    """Each task's ``column`` (accuracy, nll, brier) right after training it, on ``split``."""
    key = ("own", split, column)
    if key not in run._memo:  # a study reads each run's many times (every resampled subset)
        acc = run.accuracy
        rows = acc[(acc["split"] == split) & (acc["task"] == acc["after_task"])]
        run._memo[key] = (
            {}
            if column not in rows or rows[column].isna().any()
            else dict(zip(rows["task"], rows[column].astype(float), strict=True))
        )
    return run._memo[key]


def plasticity(run: Results, partner: Results | None, axis: str, split: str = "val") -> float:
    """Own-task gain over head-only (same seed and order), mean over tasks: accuracy gained, or
    NLL / Brier lost (so that larger is more learning on every axis)."""
    if partner is None:
        return math.nan
    column = "accuracy" if axis == "accuracy" else axis
    mine, theirs = _own(run, split, column), _own(partner, split, column)
    if not mine or set(mine) != set(theirs):
        return math.nan
    sign = 1.0 if axis == "accuracy" else -1.0
    return float(np.mean([sign * (mine[t] - theirs[t]) for t in mine]))


def _forgetting(run: Results) -> float:
    """Forgetting over every earlier task of the run's order (no task is left out)."""
    return outcome("forgetting").of_run(run, None)


def _final_acc(run: Results) -> float:
    return run.summary()["ACC"]


def _windows(run: Results) -> tuple[np.ndarray, np.ndarray]:
    nll = run.perplexity["nll"]
    first = np.asarray(nll.iloc[0], dtype=float).reshape(-1, 2)
    last = np.asarray(nll.iloc[-1], dtype=float).reshape(-1, 2)
    return last[:, 0] - first[:, 0], first[:, 1]


def cells_of(study: Study, plan: AnalysisPlan) -> Cells:
    """The study's per-seed arrays, on the plan's axis and selection rule where the runs allow."""
    runs = study.runs
    deviations = []
    has_scores = all(r.has_scores() for r in runs)
    axis = plan.plasticity_axis
    if axis != "accuracy" and not has_scores:
        deviations.append(
            f"plasticity is read as validation accuracy gain, not the plan's {axis.upper()} axis: "
            "these runs recorded no per-example scores (curlora before 0.3)"
        )
        axis = "accuracy"
    axes = [a for a in ("nll", "brier", "accuracy") if a == "accuracy" or has_scores]
    selection = plan.selection
    if selection == "domain_val_nll":
        raise ValueError(
            "The plan chooses rates by 'domain_val_nll', protocol 2's rule; the paper protocol's "
            "runs are read with 'final_val_nll' or 'own_plasticity'. Use the paper protocol's "
            "plan (analysis_plan.toml) for these runs."
        )
    if selection == "final_val_nll" and any(
        math.isnan(r.final_validation_nll()) for r in runs if r.spec.method != "head-only"
    ):
        deviations.append(
            "operating rates are chosen on own-task validation plasticity, not the plan's final "
            "validation NLL over every task: these runs validated only the task just trained"
        )
        selection = "own_plasticity"
    seeds = tuple(study.seeds)
    index = {s: k for k, s in enumerate(seeds)}

    def per_seed(arm: str, lr: float, value) -> np.ndarray:
        out = np.full(len(seeds), np.nan)
        for s, v in study.per_seed(arm, lr, value).items():
            out[index[s]] = v
        return out

    rates = {a: tuple(study.rates(a)) for a in study.arms}
    cells = [(a, lr) for a in rates for lr in rates[a]]
    x = {
        ax: {c: per_seed(*c, lambda r, ax=ax: plasticity(r, study.partner(r), ax)) for c in cells}
        for ax in axes
    }
    x["eval-accuracy"] = {
        c: per_seed(*c, lambda r: plasticity(r, study.partner(r), "accuracy", "eval"))
        for c in cells
    }
    if selection == "final_val_nll":
        score = {c: per_seed(*c, lambda r: -r.final_validation_nll()) for c in cells}
    else:
        score = x[axis]
    additive = {
        "forgetting": {c: per_seed(*c, _forgetting) for c in cells},
        "output_shift": {c: per_seed(*c, lambda r: r.summary()["output_shift"]) for c in cells},
        "acc": {c: per_seed(*c, _final_acc) for c in cells},
    }
    tokens = None
    windows = {}
    for c in cells:
        by_seed: dict[int, list[np.ndarray]] = {}
        for r in study.runs_of(*c):
            change, tok = _windows(r)
            if tokens is None:
                tokens = tok
            elif tok.shape != tokens.shape or not np.array_equal(tok, tokens):
                raise ValueError(
                    "The runs measured perplexity on different windows; a study reads one "
                    "window sample (same corpus, ppl_windows and ppl_max_length) for all of them."
                )
            by_seed.setdefault(r.spec.seed, []).append(change)
        grid = np.full((len(seeds), len(tokens)), np.nan)
        for s, changes in by_seed.items():
            grid[index[s]] = np.mean(changes, axis=0)
        windows[c] = grid
    broken = {c: np.isin(seeds, [r.spec.seed for r in study.runs_of(*c) if r.broke]) for c in cells}
    forgettable = tuple(dict.fromkeys(t for order in study.orders for t in order[:-1]))
    return Cells(
        seeds=seeds,
        rates=rates,
        x=x,
        score=score,
        additive=additive,
        windows=windows,
        tokens=np.asarray(tokens, dtype=float),
        axis=axis,
        selection=selection,
        deviations=tuple(deviations),
        design=paper_check(study, plan),
        forgetting_tasks=forgettable,
        broken=broken,
    )

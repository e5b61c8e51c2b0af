"""The plan's headline claims read from a study: estimates, intervals, Holm and robustness.

Each claim gets a bootstrap estimate (``curlora.bootstrap``) of its statistic
(``curlora.matching``), a p-value for what it asserts, a Holm-adjusted p-value across the plan's
family, and an interval at its Holm step's level beside the plain 95% one. A verdict label
follows from the adjusted decision; where nothing is decided the reading says what the interval
excludes. Re-reading every claim without one seed, or without one task order, marks the
verdicts that change as fragile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from curlora.bootstrap import Draws, Estimate, estimate, identity, seed_draws, window_draws
from curlora.cells import Cells, cells_of
from curlora.domain_study import DomainStudy
from curlora.matching import (
    Means,
    chosen_rate,
    common_range,
    difference_at,
    level_grid,
    matched_difference,
    on_rise,
    restrict,
)
from curlora.plan import AnalysisPlan, Claim
from curlora.stats import Interval, frontier, t_interval
from curlora.study import Study

VERDICTS = ("holds", "contradicted", "undecided")


@dataclass(frozen=True)
class Reading:
    """One claim read from the runs."""

    claim: Claim
    estimate: Estimate | None  # None: the study lacks the claim's arms
    p: float  # for what the claim asserts (NaN when it cannot be tested)
    p_holm: float = math.nan
    level: float = math.nan  # the confidence of the claim's Holm step
    verdict: str = "undecided"
    reason: str = ""  # why there is no estimate, or why it is undefined
    #: A matched claim's learning range both frontiers cover (as observed, on the axis's display
    #: scale), and the axis's name: the "same learning" its difference is read over.
    learning: tuple[float, float] | None = None
    learning_axis: str = ""

    @property
    def readable(self) -> bool:
        return self.estimate is not None and math.isfinite(self.estimate.value)

    def interval(self, adjusted: bool = False) -> tuple[float, float]:
        """The 95% interval, or the one at the Holm step's level."""
        if not self.readable:
            return math.nan, math.nan
        return self.estimate.interval(self.level if adjusted else None)


def _statistic(claim: Claim, cells: Cells, means: Means, plan: AnalysisPlan) -> np.ndarray:
    if claim.kind == "matched":
        return matched_difference(means, claim.outcome, claim.arm, claim.against, plan.levels)
    return means.at_operating_rate(claim.outcome, claim.arm)


def _missing(claim: Claim, cells: Cells) -> str:
    absent = [a for a in claim.arms() if a not in cells.rates]
    return f"the study has no {' or '.join(absent)} runs" if absent else ""


def estimate_claim(
    claim: Claim, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> Reading:
    """One claim's estimate and p-value (before multiplicity)."""
    if reason := _missing(claim, cells):
        return Reading(claim, None, math.nan, reason=reason)
    mine = restrict(cells, claim.arms())
    n = len(mine.seeds)
    if n == 0:
        return Reading(claim, None, math.nan, reason="no seed ran every rate of its arms")
    observed = Means(mine, identity(n, len(mine.tokens)))
    point = float(_statistic(claim, mine, observed, plan)[0])
    w, b = len(mine.tokens), replicates or plan.bootstrap_replicates
    by_seeds = _statistic(claim, mine, Means(mine, seed_draws(n, w, b, plan.bootstrap_seed)), plan)
    by_windows = _statistic(
        claim, mine, Means(mine, window_draws(n, w, b, plan.bootstrap_seed)), plan
    )
    e = estimate(point, by_seeds, by_windows, n, w, plan.confidence)
    if not math.isfinite(point):
        reason = (
            "their frontiers cover no common plasticity range"
            if claim.kind == "matched"
            else f"no rate of {claim.arm} can be chosen: at every rate a run broke or has no "
            "validation score"
        )
        return Reading(claim, e, math.nan, reason=reason)
    if claim.kind != "matched":
        return Reading(claim, e, _p_value(claim, e))
    span = _observed_span(claim, observed)
    label, scale = mine.plasticity_label
    learning = None if span is None else (span[0] * scale, span[1] * scale)
    return Reading(claim, e, _p_value(claim, e), learning=learning, learning_axis=label)


def rate_choices(
    claim: Claim, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> dict[float, float]:
    """For a claim read at its arm's operating rate: the share of the seed-resampling bootstrap
    replicates that chose each of the arm's rates."""
    mine = restrict(cells, claim.arms())
    n, w = len(mine.seeds), len(mine.tokens)
    draws = seed_draws(n, w, replicates or plan.bootstrap_replicates, plan.bootstrap_seed)
    chosen = Means(mine, draws).operating_rate(claim.arm)
    return {lr: float(np.mean(chosen == k)) for k, lr in enumerate(mine.rates[claim.arm])}


def frontier_shares(
    claim: Claim, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> dict[str, dict[float, float]]:
    """For a matched claim: per arm, the share of the seed-resampling bootstrap replicates in
    which each of its rates lies on its rising frontier."""
    mine = restrict(cells, claim.arms())
    n, w = len(mine.seeds), len(mine.tokens)
    draws = seed_draws(n, w, replicates or plan.bootstrap_replicates, plan.bootstrap_seed)
    means = Means(mine, draws)
    shares = {}
    for arm in claim.arms():
        xs, ys = means.points(claim.outcome, arm)
        on = np.array([on_rise(x, y) for x, y in zip(xs, ys, strict=True)])
        shares[arm] = {lr: float(on[:, k].mean()) for k, lr in enumerate(mine.rates[arm])}
    return shares


def _observed_span(claim: Claim, observed: Means) -> tuple[float, float] | None:
    """The plasticity range a matched claim's two frontiers cover, as observed (``observed``:
    means over the data itself)."""
    return common_range(
        observed.frontier(claim.outcome, claim.arm, 0),
        observed.frontier(claim.outcome, claim.against, 0),
    )


def _p_value(claim: Claim, e: Estimate) -> float:
    if claim.kind == "matched":
        return e.p_two_sided()
    shift = math.log(claim.threshold) if claim.outcome == "ppl_ratio" else claim.threshold
    if claim.kind == "above":
        return e.p_above(shift)
    # "within": two one-sided tests, both must reject (TOST).
    return max(e.p_above(-shift), e.p_below(shift))


def _steps(p_values: list[float]) -> list[tuple[int, int]]:
    """(Holm step, index) of each readable p-value, smallest first. A claim that could not be
    read (NaN) stays in the family as one never rejected, last: which claims the runs can read
    depends on the data, so leaving it out would shrink the family the plan registered."""
    order = sorted((p, k) for k, p in enumerate(p_values) if math.isfinite(p))
    return [(step, k) for step, (_, k) in enumerate(order)]


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values over every entry (NaN: unread, never rejected)."""
    m = len(p_values)
    adjusted = [math.nan] * m
    running = 0.0
    for step, k in _steps(p_values):
        running = max(running, min(1.0, (m - step) * p_values[k]))
        adjusted[k] = running
    return adjusted


def holm_levels(p_values: list[float], alpha: float) -> list[float]:
    """Each readable claim's confidence at its Holm step: 1 − α / (m − step), step 0 the
    smallest p, m every claim of the family (NaN for an unread one)."""
    m = len(p_values)
    levels = [math.nan] * m
    for step, k in _steps(p_values):
        levels[k] = 1 - alpha / (m - step)
    return levels


def _verdict(r: Reading, alpha: float) -> str:
    if not r.readable or not math.isfinite(r.p_holm):
        return "undecided"
    c, e = r.claim, r.estimate
    lo, hi = r.interval(adjusted=True)
    shift = math.log(c.threshold) if c.kind != "matched" and c.outcome == "ppl_ratio" else 0.0
    if r.p_holm < alpha:
        if c.kind == "matched":
            return "holds" if e.value < 0 else "contradicted"
        return "holds"
    if c.kind == "above" and hi < shift:
        return "contradicted"
    if c.kind == "within" and (lo > shift or hi < -shift):
        return "contradicted"
    return "undecided"


def study_cells(study: Study | DomainStudy, plan: AnalysisPlan) -> Cells:
    """A study's per-seed arrays, of either protocol."""
    return study.cells(plan) if isinstance(study, DomainStudy) else cells_of(study, plan)


def read_claims(
    studies: Sequence[Study | DomainStudy],
    plan: AnalysisPlan,
    replicates: int | None = None,
    cells: Sequence[Cells] | None = None,
) -> list[Reading]:
    """Every claim of the plan, each read from the first study that ran all its arms (the main
    study, the sampling ablation), Holm-adjusted across the family."""
    cells = [study_cells(s, plan) for s in studies] if cells is None else cells
    readings = []
    for claim in plan.claims:
        readings.append(estimate_claim(claim, home_cells(claim, cells), plan, replicates))
    ps = [r.p for r in readings]
    adjusted, levels = holm(ps), holm_levels(ps, plan.familywise_alpha)
    out = []
    for r, p_adj, level in zip(readings, adjusted, levels, strict=True):
        r = replace(r, p_holm=p_adj, level=level if math.isfinite(level) else plan.confidence)
        out.append(replace(r, verdict=_verdict(r, plan.familywise_alpha)))
    return out


@dataclass(frozen=True)
class Robustness:
    """Each claim's verdict with each seed, and each task order, left out in turn."""

    variants: tuple[str, ...]  # "without seed 3", "without wiki-pairs → …"
    verdicts: dict[str, tuple[str, ...]]  # claim key → the verdict in each variant

    def fragile(self, key: str, verdict: str) -> bool:
        """Whether leaving out one seed or one order changes the claim's verdict."""
        return any(v != verdict for v in self.verdicts.get(key, ()))


def robustness(
    studies: Sequence[Study | DomainStudy], plan: AnalysisPlan, replicates: int = 500
) -> Robustness:
    """Re-read every claim without each seed and without each task order (fewer replicates:
    what is asked is whether a label changes, not a new interval)."""
    seeds = sorted({s for st in studies for s in st.seeds})
    orders = list(dict.fromkeys(o for st in studies for o in st.orders))
    variants = [(f"without seed {s}", dict(seed=s)) for s in seeds if len(seeds) > 2]
    variants += [(f"without {' → '.join(o)}", dict(order=o)) for o in orders if len(orders) > 1]
    verdicts: dict[str, list[str]] = {c.key: [] for c in plan.claims}
    for _, leave_out in variants:
        subset = [st.without(**leave_out) for st in studies]
        for r in read_claims(subset, plan, replicates):
            verdicts[r.claim.key].append(r.verdict)
    return Robustness(
        tuple(name for name, _ in variants), {k: tuple(v) for k, v in verdicts.items()}
    )


def seed_t_interval(claim: Claim, cells: Cells, plan: AnalysisPlan) -> Interval:
    """The claim's statistic per seed, as the analysis before the plan read it, as a Student-t
    interval over seeds: operating rates chosen once on all seeds, every seed's outcome placed
    at the rates' mean plasticity, perplexity on the full window sample. It leaves out the
    x axis's and the windows' noise; it is shown beside the bootstrap interval for contrast."""
    if _missing(claim, cells):
        return t_interval([])
    mine = restrict(cells, claim.arms())
    n = len(mine.seeds)
    every = Means(mine, identity(n, len(mine.tokens)))
    per_seed = []
    for k in range(n):
        alone = np.zeros((1, n))
        alone[0, k] = 1.0
        one = Means(mine, Draws(alone, np.ones((1, len(mine.tokens)))))
        if claim.kind != "matched":
            chosen = chosen_rate(every, claim.arm)
            if chosen is None:
                return t_interval([])
            per_seed.append(float(one.outcome(claim.outcome, claim.arm, chosen)[0]))
            continue
        curves = {}
        for arm in claim.arms():
            curves[arm] = frontier(
                [
                    (lr, float(every.x(arm, lr)[0]), float(one.outcome(claim.outcome, arm, lr)[0]))
                    for lr in mine.rates[arm]
                ]
            )
        span = common_range(curves[claim.arm], curves[claim.against])
        if span is None:
            continue
        xs = [span[0] + f * (span[1] - span[0]) for f in plan.levels]
        per_seed.append(
            float(
                np.mean(np.interp(xs, *curves[claim.arm]) - np.interp(xs, *curves[claim.against]))
            )
        )
    return t_interval(per_seed, plan.confidence)


def at_every_level(
    claim: Claim, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> list[tuple[float, Estimate]]:
    """A matched claim read at ``plan.grid_levels`` plasticity levels spread over the range both
    mean frontiers cover, from barely learning to the most both reach, each with its interval."""
    if claim.kind != "matched" or _missing(claim, cells):
        return []
    mine = restrict(cells, claim.arms())
    n, w = len(mine.seeds), len(mine.tokens)
    if n == 0:
        return []
    every = Means(mine, identity(n, w))
    span = _observed_span(claim, every)
    if span is None:
        return []
    b = replicates or plan.bootstrap_replicates
    by_seeds = Means(mine, seed_draws(n, w, b, plan.bootstrap_seed))
    by_windows = Means(mine, window_draws(n, w, b, plan.bootstrap_seed))
    out = []
    for level in level_grid(*span, plan.grid_levels):
        point = float(difference_at(every, claim.outcome, claim.arm, claim.against, level)[0])
        e = estimate(
            point,
            difference_at(by_seeds, claim.outcome, claim.arm, claim.against, level),
            difference_at(by_windows, claim.outcome, claim.arm, claim.against, level),
            n,
            w,
            plan.confidence,
        )
        out.append((level, e))
    return out


def home_cells(claim: Claim, cells: Sequence[Cells]) -> Cells:
    """The cells a claim is read from: the first study that ran all its arms."""
    return next((c for c in cells if all(a in c.rates for a in claim.arms())), cells[0])

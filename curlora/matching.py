"""The statistics a claim reads, computed in every bootstrap replicate: operating rates and
frontiers compared at matched plasticity.

A *frontier* is an arm's mean outcome against its mean plasticity across its learning rates,
taken in rate order up to the rate that learns most (past it an arm breaks and learns less).
Two frontiers are compared on the plasticity range both cover: at fixed fractions of that range
(the plan's ``levels``) for the estimate, and at absolute plasticity values spread over it for
the reading at every level. Means are over seeds, so in a replicate the positions on the x axis
move with the resampled seeds: the x axis's noise is in the interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from curlora.bootstrap import Draws, identity, log_ratio_mean, seed_mean
from curlora.cells import Cells

#: ``Means.operating_rate``'s index where no rate of the arm can be chosen.
NO_RATE = -1


class Means:
    """Per-replicate means over seeds of a study's cells (computed once per cell)."""

    def __init__(self, cells: Cells, draws: Draws):
        self.cells, self.draws = cells, draws
        self._memo: dict[tuple, np.ndarray] = {}

    def _get(self, key: tuple, compute) -> np.ndarray:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def _cell_mean(self, key: tuple, arm: str, lr: float, compute) -> np.ndarray:
        """A cell's per-replicate mean, undefined in the replicates that draw a seed whose run
        there broke: a diverged run has no value to average, and leaving it out would let
        the rate look as if it had not broken."""

        def masked() -> np.ndarray:
            mean = compute()
            broken = self.cells.broken.get((arm, lr))
            if broken is not None and broken.any():
                mean = np.where(self.draws.seeds @ broken > 0, np.nan, mean)
            return mean

        return self._get(key, masked)

    def x(self, arm: str, lr: float, axis: str | None = None) -> np.ndarray:
        """Mean plasticity (the cells' axis unless named)."""
        axis = axis or self.cells.axis
        return self._cell_mean(
            ("x", axis, arm, lr),
            arm,
            lr,
            lambda: seed_mean(self.cells.x[axis][(arm, lr)], self.draws.seeds),
        )

    def score(self, arm: str, lr: float) -> np.ndarray:
        """Mean operating-rate score."""
        return self._cell_mean(
            ("score", arm, lr),
            arm,
            lr,
            lambda: seed_mean(self.cells.score[(arm, lr)], self.draws.seeds),
        )

    def outcome(self, name: str, arm: str, lr: float) -> np.ndarray:
        """Mean outcome on its analysis scale (perplexity ratio as a log)."""
        if name == "ppl_ratio":
            return self._cell_mean(
                ("y", name, arm, lr),
                arm,
                lr,
                lambda: log_ratio_mean(
                    self.cells.windows[(arm, lr)], self.cells.tokens, self.draws
                ),
            )
        return self._cell_mean(
            ("y", name, arm, lr),
            arm,
            lr,
            lambda: seed_mean(self.cells.additive[name][(arm, lr)], self.draws.seeds),
        )

    def operating_rate(self, arm: str) -> np.ndarray:
        """Per replicate, the index (into the arm's rates) of the best mean score; ``NO_RATE``
        where no rate has one (every rate broke, or none was validated)."""
        rates = self.cells.rates[arm]
        scores = np.stack([self.score(arm, lr) for lr in rates], axis=1)
        defined = np.isfinite(scores)
        best = np.where(defined, scores, -np.inf).argmax(axis=1)
        # argmax over all -inf would name the lowest rate, as if it had been chosen.
        return np.where(defined.any(axis=1), best, NO_RATE)

    def at_operating_rate(self, name: str, arm: str) -> np.ndarray:
        """Per replicate, the outcome at the operating rate chosen in that replicate (NaN
        where none can be chosen)."""
        rates = self.cells.rates[arm]
        values = np.stack([self.outcome(name, arm, lr) for lr in rates], axis=1)
        chosen = self.operating_rate(arm)
        picked = values[np.arange(len(values)), np.maximum(chosen, 0)]
        return np.where(chosen == NO_RATE, np.nan, picked)

    def points(self, name: str, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """(plasticity, outcome) at each of the arm's rates, in rate order: replicates × rates."""
        rates = self.cells.rates[arm]
        return self._get(
            ("points", name, arm),
            lambda: (
                np.stack([self.x(arm, lr) for lr in rates], axis=1),
                np.stack([self.outcome(name, arm, lr) for lr in rates], axis=1),
            ),
        )

    def frontier(self, name: str, arm: str, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Replicate ``b``'s frontier of an arm: (plasticity, outcome), rising part."""
        xs, ys = self.points(name, arm)
        return rising(xs[b], ys[b])


def on_rise(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Which points of a frontier given in rate order are on its rising part: defined, and
    learning more than every lower rate that is defined."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    best = np.maximum.accumulate(np.where(ok, xs, -np.inf))
    before = np.concatenate([[-np.inf], best[:-1]])
    return ok & (xs > before)


def rising(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rising part of a frontier given in rate order (as ``stats.frontier``): points that
    learn more than every lower rate; undefined points are skipped."""
    keep = on_rise(xs, ys)
    return xs[keep], ys[keep]


def common_range(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float] | None:
    """The plasticity range both frontiers cover (None if none, or a single point)."""
    if len(a[0]) == 0 or len(b[0]) == 0:
        return None
    lo, hi = max(a[0][0], b[0][0]), min(a[0][-1], b[0][-1])
    return (float(lo), float(hi)) if hi > lo else None


def matched_difference(
    means: Means, name: str, a: str, b: str, levels: Sequence[float]
) -> np.ndarray:
    """Per replicate, arm ``a`` minus arm ``b`` on ``name``, averaged over ``levels`` (fractions
    of the range both frontiers cover); NaN where they cover no common range."""
    out = np.full(means.draws.replicates, np.nan)
    for k in range(means.draws.replicates):
        fa, fb = means.frontier(name, a, k), means.frontier(name, b, k)
        span = common_range(fa, fb)
        if span is None:
            continue
        xs = [span[0] + f * (span[1] - span[0]) for f in levels]
        out[k] = float(np.mean(np.interp(xs, *fa) - np.interp(xs, *fb)))
    return out


def difference_at(means: Means, name: str, a: str, b: str, level: float) -> np.ndarray:
    """Per replicate, ``a`` minus ``b`` at one absolute plasticity (NaN where either frontier
    does not reach it)."""
    out = np.full(means.draws.replicates, np.nan)
    for k in range(means.draws.replicates):
        fa, fb = means.frontier(name, a, k), means.frontier(name, b, k)
        if all(len(f[0]) and f[0][0] <= level <= f[0][-1] for f in (fa, fb)):
            out[k] = float(np.interp(level, *fa) - np.interp(level, *fb))
    return out


def complete_seeds(cells: Cells, arms: Sequence[str]) -> np.ndarray:
    """Which seeds have a run in every cell of ``arms`` (a mask over ``cells.seeds``); a run
    that broke counts as run, so a seed is not dropped for the arm that diverged on it."""
    keep = np.ones(len(cells.seeds), dtype=bool)
    for arm in arms:
        for lr in cells.rates[arm]:
            measured = np.isfinite(cells.x[cells.axis][(arm, lr)])
            measured &= np.isfinite(cells.windows[(arm, lr)]).all(axis=1)
            keep &= measured | cells.broken.get((arm, lr), False)
    return keep


def restrict(cells: Cells, arms: Sequence[str]) -> Cells:
    """The cells of ``arms`` on the seeds that ran every cell of them (a paired design)."""
    keep = complete_seeds(cells, arms)
    chosen = {(a, lr) for a in arms for lr in cells.rates[a]}

    def cut(table: dict) -> dict:
        return {c: v[keep] for c, v in table.items() if c in chosen}

    return Cells(
        seeds=tuple(s for s, k in zip(cells.seeds, keep, strict=True) if k),
        rates={a: cells.rates[a] for a in arms},
        x={ax: cut(t) for ax, t in cells.x.items()},
        score=cut(cells.score),
        additive={name: cut(t) for name, t in cells.additive.items()},
        windows=cut(cells.windows),
        tokens=cells.tokens,
        axis=cells.axis,
        selection=cells.selection,
        deviations=cells.deviations,
        design=cells.design,
        forgetting_tasks=cells.forgetting_tasks,
        x_label=cells.x_label,
        broken=cut(cells.broken),
    )


def observed(cells: Cells, arm: str) -> tuple[Cells, Means]:
    """An arm's cells on the seeds that ran every rate of it, and their means as observed: what
    its operating rate is chosen on by the claims, and by protocol 2's tables and figures."""
    mine = restrict(cells, [arm])
    return mine, Means(mine, identity(len(mine.seeds), len(mine.tokens)))


def chosen_rate(means: Means, arm: str) -> float | None:
    """The arm's operating rate in the means' first replicate (the data as observed, for
    ``observed``'s means); None where no rate can be chosen."""
    k = int(means.operating_rate(arm)[0])
    return None if k == NO_RATE else means.cells.rates[arm][k]


def level_grid(lo: float, hi: float, count: int) -> list[float]:
    """``count`` plasticity levels spread evenly inside [lo, hi] (ends excluded: the frontiers'
    ends move in every replicate, so a level on an end would be undefined half the time)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    return [lo + (hi - lo) * (k + 1) / (count + 1) for k in range(count)]

"""Statistics for verdicts: t-intervals over seeds, paired differences, detectable effects, a
bootstrap over evaluation examples, and learning-rate frontiers read at matched plasticity.

The replicate is the seed (``docs/statistics.md``): values are averaged within a seed first
(over tasks, task orders), then a Student-t interval is taken over seeds with df = n − 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import integrate as _integrate
from scipy import optimize as _optimize
from scipy import stats as _st


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% (or other) t-interval over ``n`` replicates."""

    mean: float
    lo: float
    hi: float
    n: int
    se: float
    confidence: float = 0.95

    @property
    def half(self) -> float:
        """Half-width of the interval (NaN with fewer than two replicates)."""
        return (self.hi - self.lo) / 2

    @property
    def df(self) -> int:
        return self.n - 1

    @property
    def shown_positive(self) -> bool:
        """Above zero with an interval that measured spread: replicates that all gave the same
        value (e.g. +1 of 300 validation examples in every seed) have no spread to judge by."""
        # A spread below 1e-9 is rounding in the mean of equal values, not a measured spread.
        return self.n > 1 and self.se > 1e-9 and self.lo > 0

    def detectable(self, power: float = 0.8) -> float:
        """The smallest true effect this design detects with ``power`` (two-sided test at 1 − confidence)."""
        return detectable_effect(self.se, self.df, power, 1 - self.confidence)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of independent replicates (NaN bounds for n < 2)."""
    x = np.asarray([v for v in values if not _isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, confidence)
    if len(x) < 2:
        return Interval(float(x.mean()), math.nan, math.nan, 1, math.nan, confidence)
    se = float(x.std(ddof=1) / math.sqrt(len(x)))
    half = float(_st.t.ppf(0.5 + confidence / 2, len(x) - 1) * se)
    mean = float(x.mean())
    return Interval(mean, mean - half, mean + half, len(x), se, confidence)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the t-interval — for plots' bands."""
    interval = t_interval(values, confidence)
    return interval.mean, interval.half


def logit_t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of proportions on the log-odds scale, drawn back to [0, 1]:
    as wide as a t-interval where proportions are far from 0 and 1, and never outside them."""
    # Proportions of exactly 0 or 1 have no log-odds; 1e-3 is below one example in 400.
    p = np.clip(np.asarray([v for v in values if not _isnan(v)], dtype=float), 1e-3, 1 - 1e-3)
    i = t_interval(np.log(p / (1 - p)), confidence)

    def expit(z: float) -> float:
        return float(1 / (1 + np.exp(-z)))

    return Interval(expit(i.mean), expit(i.lo), expit(i.hi), i.n, i.se, confidence)


def paired(a: dict, b: dict, confidence: float = 0.95) -> Interval:
    """The t-interval of a − b over the replicates (keys, e.g. seeds) both have."""
    common = sorted(set(a) & set(b))
    return t_interval([a[k] - b[k] for k in common], confidence)


def detectable_effect(se: float, df: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true effect a two-sided t-test (df = n − 1) detects with ``power``.

    Exact, from the noncentral t distribution: the effect δ at which the statistic, noncentral
    with δ / SE, crosses ±t(1 − α/2) with probability ``power``. The shortcut (t(1 − α/2) + t(power))
    × SE falls short with few replicates (77% power at df = 2, not 80%); with many it is the
    familiar ≈ 2.8 × SE.
    """
    if df < 1 or _isnan(se):
        return math.nan
    return _detectable_ncp(int(df), power, alpha) * se


@lru_cache(maxsize=256)
def _detectable_ncp(df: int, power: float, alpha: float) -> float:
    """The noncentrality at which a two-sided t-test with ``df`` has ``power``."""
    crit = _st.t.ppf(1 - alpha / 2, df)

    def power_at(ncp: float) -> float:
        exact = _st.nct.sf(crit, df, ncp) + _st.nct.cdf(-crit, df, ncp)
        if math.isfinite(exact):
            return exact

        # scipy's nct gives NaN far in its tails at small df: integrate over the chi-square of
        # the statistic's denominator instead.
        def rejected(v: float) -> float:
            scale = crit * math.sqrt(v / df)
            return (_st.norm.sf(scale - ncp) + _st.norm.cdf(-scale - ncp)) * _st.chi2.pdf(v, df)

        return _integrate.quad(rejected, 0, math.inf, limit=200)[0]

    # The shortcut (t(1 − α/2) + t(power)) falls a little short: twice it brackets the root.
    upper = 2 * (crit + _st.t.ppf(power, df))
    return float(_optimize.brentq(lambda ncp: power_at(ncp) - power, 0.0, upper))


def bootstrap_se(
    arrays: Sequence[np.ndarray],
    statistic: Callable[[list[np.ndarray]], float],
    n_boot: int = 1000,
    seed: int = 0,
) -> float:
    """Standard error of ``statistic`` over one run's evaluation examples, by bootstrap.

    ``arrays`` are the run's per-example values (e.g. 0/1 correctness per task); each is
    resampled with replacement. This is the per-run uncertainty; between-run uncertainty is the
    t-interval over seeds (a percentile bootstrap over three seeds covers far less than 95%).
    """
    rng = np.random.default_rng(seed)
    values = [
        statistic([a[rng.integers(0, len(a), len(a))] for a in arrays]) for _ in range(n_boot)
    ]
    return float(np.std(values, ddof=1))


def frontier(points: Sequence[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """The rising part of a learning-rate frontier: (plasticity, outcome) in order of rate.

    ``points`` are (learning rate, plasticity, outcome). Rates past the one of highest
    plasticity (where a method breaks and learns less) and points that learn no more than a
    smaller rate are dropped, so plasticity strictly increases and can be interpolated.
    """
    ordered = sorted(points)
    xs, ys = [], []
    for _, p, m in ordered:
        if _isnan(p) or _isnan(m):
            continue
        if not xs or p > xs[-1]:
            xs.append(p)
            ys.append(m)
    return np.asarray(xs), np.asarray(ys)


def at_plasticity(curve: tuple[np.ndarray, np.ndarray], level: float) -> float:
    """The outcome a frontier interpolates at ``level`` (NaN outside the plasticity it reached)."""
    xs, ys = curve
    if len(xs) == 0 or level < xs[0] or level > xs[-1]:
        return math.nan
    return float(np.interp(level, xs, ys))


def common_range(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float] | None:
    """The plasticity range every frontier covers (None when they do not overlap)."""
    if not curves or any(len(c[0]) == 0 for c in curves):
        return None
    lo = max(float(c[0][0]) for c in curves)
    hi = min(float(c[0][-1]) for c in curves)
    return (lo, hi) if lo <= hi else None


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)

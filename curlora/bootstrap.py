"""The hierarchical bootstrap: seeds and perplexity windows resampled, statistics re-run inside.

Two sources of noise are resampled, each where it lives:

- **seeds**, with replacement. In the paper's protocol a seed fixes a run's data split, head,
  sampled columns and batch order, so its validation and evaluation examples are its own draw:
  resampling seeds resamples them too. (Protocol 2 measures every seed on the same held-out
  text, so there the window resampling carries the measurement's noise.) Resampling examples again inside each seed would count their noise twice (Ren et
  al. 2010, "Nonparametric bootstrapping for hierarchical data": resample the top level with
  replacement and the levels below it without).
- **perplexity windows**, with replacement, once per replicate for every run together: all runs
  read the same windows, so their noise is shared and does not show in the spread over seeds.

A statistic (an operating rate chosen, frontiers interpolated at matched plasticity) is
recomputed in every replicate, so the interval carries the noise of choosing and matching. With
few seeds a percentile interval covers too little (a bootstrap variance of a mean is (n − 1)/n of
the usual one, and its quantiles are normal, not Student-t); the interval is therefore
estimate ± t(n − 1) × SE × sqrt(n / (n − 1)), which for a plain mean over seeds is exactly the
t-interval — and its coverage is checked by simulation (tests/test_inference.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st


@dataclass(frozen=True)
class Draws:
    """Resampling weights: seed counts (replicates × seeds), window counts (replicates × windows)."""

    seeds: np.ndarray
    windows: np.ndarray

    @property
    def replicates(self) -> int:
        return len(self.seeds)


def identity(n_seeds: int, n_windows: int) -> Draws:
    """The data as observed: one replicate with every seed and window once."""
    return Draws(np.ones((1, n_seeds)), np.ones((1, n_windows)))


def seed_draws(n_seeds: int, n_windows: int, replicates: int, seed: int) -> Draws:
    """``replicates`` resamples of the seeds (with replacement), every window kept once."""
    rng = np.random.default_rng([seed, 0])
    counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=replicates)
    return Draws(counts.astype(float), np.ones((replicates, n_windows)))


def window_draws(n_seeds: int, n_windows: int, replicates: int, seed: int) -> Draws:
    """``replicates`` resamples of the perplexity windows (with replacement), every seed once."""
    rng = np.random.default_rng([seed, 1])
    counts = rng.multinomial(n_windows, np.full(n_windows, 1 / n_windows), size=replicates)
    return Draws(np.ones((replicates, n_seeds)), counts.astype(float))


def seed_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per replicate, the weighted mean over seeds of per-seed ``values`` (NaN seeds left out)."""
    have = np.isfinite(values)
    w = weights * have
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w @ np.where(have, values, 0.0)) / total, np.nan)


def log_ratio_mean(changes: np.ndarray, tokens: np.ndarray, d: Draws) -> np.ndarray:
    """Per replicate, the mean over seeds of the log perplexity ratio read on the resampled
    windows: per seed, (summed NLL change over windows) / (tokens over windows)."""
    per_seed = (d.windows @ np.nan_to_num(changes).T) / (d.windows @ tokens)[:, None]
    have = np.isfinite(changes).all(axis=1)
    w = d.seeds * have
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * per_seed).sum(axis=1) / total, np.nan)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap standard error, on the analysis scale.

    The two sources are resampled apart: over seeds (n of them) and over windows (W). Each
    bootstrap variance is scaled by m / (m − 1), the bias of a bootstrap variance of a mean over
    m units. The degrees of freedom are n − 1, as the registered plans write: the seeds are the
    replicates, and where the window component dominates this is conservative (a
    Welch–Satterthwaite df would approach W − 1; docs/statistics.md gives both coverages).
    """

    value: float
    se: float
    df: float
    n: int  # seeds behind it
    se_seeds: float
    se_windows: float
    replicates: (
        np.ndarray
    )  # the statistic in every replicate, seeds' then windows' (NaN: undefined)
    confidence: float = 0.95

    @property
    def undefined(self) -> float:
        """The share of replicates where the statistic could not be computed."""
        return float(np.mean(~np.isfinite(self.replicates))) if len(self.replicates) else 1.0

    def interval(self, confidence: float | None = None) -> tuple[float, float]:
        """estimate ± t(df) × SE at ``confidence`` (default: the estimate's)."""
        c = self.confidence if confidence is None else confidence
        if not self._usable():
            return math.nan, math.nan
        half = float(_st.t.ppf(0.5 + c / 2, self.df)) * self.se
        return self.value - half, self.value + half

    def p_two_sided(self, null: float = 0.0) -> float:
        """P-value of 'the statistic equals ``null``'."""
        if not self._usable():
            return math.nan
        return float(2 * _st.t.sf(abs(self.value - null) / self.se, self.df))

    def p_above(self, threshold: float) -> float:
        """P-value of 'the statistic is at most ``threshold``' (evidence that it exceeds it)."""
        if not self._usable():
            return math.nan
        return float(_st.t.sf((self.value - threshold) / self.se, self.df))

    def p_below(self, threshold: float) -> float:
        """P-value of 'the statistic is at least ``threshold``' (evidence that it is below)."""
        if not self._usable():
            return math.nan
        return float(_st.t.cdf((self.value - threshold) / self.se, self.df))

    def _usable(self) -> bool:
        return self.n >= 2 and math.isfinite(self.se) and self.se > 0 and self.df > 0


def _component(replicates: np.ndarray, units: int) -> float:
    """A bootstrap variance over ``units`` resampled units, scaled by units / (units − 1)."""
    finite = replicates[np.isfinite(replicates)]
    if units < 2 or len(finite) < 2:
        return math.nan
    return float(np.var(finite, ddof=1)) * units / (units - 1)


def estimate(
    value: float,
    by_seeds: np.ndarray,
    by_windows: np.ndarray,
    n: int,
    windows: int,
    confidence: float = 0.95,
) -> Estimate:
    """An Estimate from the replicates of seed and of window resampling."""
    replicates = np.concatenate([by_seeds, by_windows])
    v_seeds = _component(by_seeds, n)
    v_windows = _component(by_windows, windows) if windows > 1 else 0.0
    if not (math.isfinite(value) and math.isfinite(v_seeds)):
        return Estimate(value, math.nan, math.nan, n, math.nan, math.nan, replicates, confidence)
    v_windows = v_windows if math.isfinite(v_windows) else 0.0
    return Estimate(
        value,
        math.sqrt(v_seeds + v_windows),
        float(n - 1),
        n,
        math.sqrt(v_seeds),
        math.sqrt(v_windows),
        replicates,
        confidence,
    )

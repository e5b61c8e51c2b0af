"""Simulated studies with a known truth: how often an interval procedure covers it.

Two arms climb parallel frontiers — log perplexity ratio = slope × plasticity + the arm's
offset — so at every matched plasticity arm ``a`` minus arm ``b`` is ``effect``, whatever levels
a procedure compares at. The noise has the three sources real runs have:

- per seed and rate, plasticity varies around the rate's true value (the x axis's noise), and
  perplexity follows the plasticity that seed reached;
- per seed, an effect shared by both arms (same data, same order) and one per arm;
- per perplexity window, an arm-by-window effect that every run of the arm shares, because all
  runs read the same windows (the true value averages over the corpus, not the sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curlora.cells import Cells
from curlora.claims import estimate_claim, seed_t_interval
from curlora.plan import AnalysisPlan, Claim


@dataclass(frozen=True)
class Scenario:
    """The truth and noise of a simulated study (perplexity on the log scale)."""

    seeds: int = 3
    windows: int = 32
    effect: float = 0.05
    slope: float = 0.03
    x_noise: float = 0.3  # sd of a seed's plasticity around the rate's
    seed_noise: float = 0.01  # sd of a seed's log ratio, per arm
    shared_noise: float = 0.01  # sd of a seed's effect shared by both arms
    window_noise: float = 0.03  # sd of an arm × window effect
    tokens: int = 512


#: True plasticity at each rate: rising to the third rate, then breaking (learning less).
RATES = (1e-3, 3e-3, 1e-2, 3e-2)
PLASTICITY = {"a": (0.5, 1.5, 2.5, 1.0), "b": (0.3, 1.2, 2.2, 0.8)}


def simulated_cells(scenario: Scenario, rng: np.random.Generator) -> Cells:
    """One simulated study's cells."""
    s = scenario
    shared = rng.normal(0, s.shared_noise, s.seeds)
    x, windows = {}, {}
    for arm, offset in (("a", s.effect), ("b", 0.0)):
        per_window = rng.normal(0, s.window_noise, s.windows)
        own = rng.normal(0, s.seed_noise, s.seeds)
        for lr, true_x in zip(RATES, PLASTICITY[arm], strict=True):
            xs = true_x + rng.normal(0, s.x_noise, s.seeds)
            log_ratio = offset + s.slope * xs + shared + own
            x[(arm, lr)] = xs
            # Summed NLL change per window: its tokens × (the run's log ratio + the window's).
            windows[(arm, lr)] = s.tokens * (log_ratio[:, None] + per_window[None, :])
    cells = list(x)
    nan = {c: np.full(s.seeds, np.nan) for c in cells}
    return Cells(
        seeds=tuple(range(s.seeds)),
        rates={"a": RATES, "b": RATES},
        x={"accuracy": x},
        score=x,
        additive={"forgetting": nan, "output_shift": nan, "acc": nan},
        windows=windows,
        tokens=np.full(s.windows, float(s.tokens)),
        axis="accuracy",
        selection="own_plasticity",
    )


CLAIM = Claim("simulated", "a minus b at matched plasticity", "matched", "a", "ppl_ratio", "b")


def coverage(
    scenario: Scenario, plan: AnalysisPlan, studies: int, replicates: int, seed: int = 0
) -> dict[str, float]:
    """Share of simulated studies whose 95% interval covers the true effect: the bootstrap
    (this analysis) and the t-interval over seeds at mean plasticity (the analysis before it)."""
    rng = np.random.default_rng(seed)
    hits = {"bootstrap": 0, "seed t-interval": 0}
    counted = 0
    for k in range(studies):
        cells = simulated_cells(scenario, rng)
        reading = estimate_claim(
            CLAIM, cells, _with_seed(plan, seed * 100_003 + k), replicates=replicates
        )
        if not reading.readable:
            continue
        counted += 1
        lo, hi = reading.interval()
        hits["bootstrap"] += lo <= scenario.effect <= hi
        old = seed_t_interval(CLAIM, cells, plan)
        hits["seed t-interval"] += old.lo <= scenario.effect <= old.hi
    return {k: v / counted for k, v in hits.items()} | {"studies": counted}


def _with_seed(plan: AnalysisPlan, seed: int) -> AnalysisPlan:
    from dataclasses import replace

    return replace(plan, bootstrap_seed=seed)

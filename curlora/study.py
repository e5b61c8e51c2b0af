"""The numbers a verdict is made of, read from the runs of a design.

A ``Study`` indexes the runs of arms × learning rates × seeds × task orders. Every quantity is
computed per run, averaged over task orders *within* a seed, and compared across arms seed by
seed (the seed is the replicate; methods run with one seed see the same data and order).

- *plasticity*: how much more a method's new heads reach than the head alone, averaged over the
  tasks: own-task accuracy right after training it, minus head-only's (same seed and order).
  Read on the validation split to choose rates and to match methods, on the eval split to report.
- *stability*: perplexity ratio of the original LM head, forgetting of learned tasks (accuracy
  right after training minus after the last task, eval split), and the output shift.
- *operating rate*: per arm, the rate with the highest mean validation plasticity.
- *frontier*: per arm, stability against validation plasticity across rates — each rate placed
  at its mean plasticity over seeds, each seed contributing its own stability — read at
  plasticity levels both compared frontiers reach (matched learning).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curlora import stats
from curlora.experiment.design import arm_of
from curlora.experiment.results import Results

#: Stability outcomes a frontier can be read on: name → (function of a run, what it means).
OUTCOMES = {
    "ppl_ratio": "perplexity after / before",
    "forgetting": "forgetting of learned tasks (accuracy points lost)",
    "output_shift": "mean output shift of adapted layers",
}
#: Levels at which frontiers are compared, as fractions of the common plasticity range.
LEVELS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Comparison:
    """Arm ``a`` minus arm ``b`` on one outcome, seed by seed, at matched plasticity or one rate."""

    a: str
    b: str
    outcome: str
    interval: stats.Interval  # over seeds of the mean difference across the levels
    levels: tuple[float, ...]  # the plasticity levels compared (empty: frontiers do not overlap)
    per_level: tuple[stats.Interval, ...]


class Study:
    """The runs of a design, indexed by arm, learning rate, seed and task order."""

    def __init__(self, runs: list[Results], base_rank: int | None = None):
        if not runs:
            raise ValueError("A study needs at least one run.")
        self.runs = runs
        base = runs[0].spec.replace(rank=base_rank) if base_rank else None
        self.index: dict[tuple[str, float, int, tuple], Results] = {}
        for r in runs:
            key = (arm_of(r.spec, base), r.spec.lr, r.spec.seed, r.spec.tasks)
            self.index[key] = r
        self.head_only = {(s, t): r for (a, _, s, t), r in self.index.items() if a == "head-only"}

    # ------------------------------------------------------------------ what is there

    @property
    def arms(self) -> list[str]:
        """Arm names in the order first seen."""
        return list(dict.fromkeys(k[0] for k in self.index))

    def rates(self, arm: str) -> list[float]:
        """The learning rates an arm was run at, ascending."""
        return sorted({k[1] for k in self.index if k[0] == arm})

    @property
    def seeds(self) -> list[int]:
        return sorted({k[2] for k in self.index})

    @property
    def orders(self) -> list[tuple]:
        return list(dict.fromkeys(k[3] for k in self.index))

    def runs_of(self, arm: str, lr: float | None = None) -> list[Results]:
        """The runs of an arm (at one rate, or its operating rate)."""
        lr = self.operating_rate(arm) if lr is None else lr
        return [r for (a, rate, _, _), r in self.index.items() if a == arm and rate == lr]

    # ------------------------------------------------------------------ per-run quantities

    def partner(self, run: Results) -> Results | None:
        """The head-only run with the same seed and task order (the plasticity baseline)."""
        return self.head_only.get((run.spec.seed, run.spec.tasks))

    def plasticity(self, run: Results, split: str = "val") -> float:
        """Mean own-task accuracy gain over head-only (same seed and order), on ``split``."""
        base = self.partner(run)
        if base is None:
            return math.nan
        mine, theirs = run.accuracy_matrix(split), base.accuracy_matrix(split)
        tasks = run.task_names
        if mine.isna().all().all():
            return math.nan
        return float(np.mean([mine.loc[t, t] - theirs.loc[t, t] for t in tasks]))

    def learned(self, arm: str, lr: float | None = None) -> dict[str, stats.Interval]:
        """Per task: own-task eval accuracy minus its majority level, over seeds (learned if lo > 0)."""
        per_task: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in self.runs_of(arm, lr):
            R, majority = r.accuracy_matrix(), r.majority()
            for t in r.task_names:
                per_task[t][r.spec.seed].append(R.loc[t, t] - majority[t])
        return {
            t: stats.t_interval([np.mean(v) for v in seeds.values()])
            for t, seeds in per_task.items()
        }

    def learned_tasks(self, arm: str, lr: float | None = None) -> list[str]:
        """Tasks whose own-task accuracy is above the majority level (interval above zero)."""
        return [t for t, i in self.learned(arm, lr).items() if i.n > 1 and i.lo > 0]

    def outcome(self, run: Results, name: str, learned: list[str] | None = None) -> float:
        """A stability outcome of one run (see OUTCOMES)."""
        s = run.summary()
        if name == "ppl_ratio":
            return s["ppl_ratio"]
        if name == "output_shift":
            return s["output_shift"]
        if name == "forgetting":
            tasks = run.task_names[:-1]
            keep = [t for t in tasks if learned is None or t in learned]
            if not keep:
                return math.nan
            R = run.accuracy_matrix()
            return float(np.mean([R.loc[t, t] - R.iloc[-1][t] for t in keep]))
        raise ValueError(f"Unknown outcome {name!r}; choose one of {', '.join(OUTCOMES)}.")

    def per_seed(
        self, arm: str, lr: float | None, value: Callable[[Results], float]
    ) -> dict[int, float]:
        """``value`` of each run of an arm at a rate, averaged over task orders within each seed."""
        by_seed: dict[int, list[float]] = defaultdict(list)
        for r in self.runs_of(arm, lr):
            v = value(r)
            if not math.isnan(v):
                by_seed[r.spec.seed].append(v)
        return {s: float(np.mean(v)) for s, v in by_seed.items()}

    # ------------------------------------------------------------------ rates and frontiers

    def operating_rate(self, arm: str) -> float:
        """The arm's rate with the highest mean validation plasticity (head-only: its only rate)."""
        rates = self.rates(arm)
        if arm == "head-only" or len(rates) == 1:
            return rates[0]
        score = {
            lr: np.mean(list(self.per_seed(arm, lr, self.plasticity).values()) or [-np.inf])
            for lr in rates
        }
        return max(rates, key=lambda lr: score[lr])

    def rate_plasticity(self, arm: str) -> dict[float, float]:
        """Each rate's validation plasticity, the mean over seeds: where the rate sits on x."""
        return {
            lr: float(np.mean(list(v.values())))
            for lr in self.rates(arm)
            if (v := self.per_seed(arm, lr, self.plasticity))
        }

    def frontier(self, arm: str, seed: int, outcome: str) -> tuple[np.ndarray, np.ndarray]:
        """One seed's frontier of an arm: ``outcome`` at each rate, placed at the rate's mean
        validation plasticity (so every seed's frontier spans the same x, and the seed's own
        noise is in the outcome, where the interval over seeds carries it)."""
        learned = self.learned_tasks(arm) if outcome == "forgetting" else None
        x = self.rate_plasticity(arm)
        points = [
            (
                lr,
                x[lr],
                self.per_seed(arm, lr, lambda r: self.outcome(r, outcome, learned)).get(
                    seed, math.nan
                ),
            )
            for lr in self.rates(arm)
            if lr in x
        ]
        return stats.frontier(points)

    def compare(self, a: str, b: str, outcome: str) -> Comparison:
        """Arm ``a`` minus arm ``b`` on ``outcome`` at matched validation plasticity, seed by seed.

        The levels are fixed fractions of the plasticity range both arms' frontiers cover; each
        seed contributes its mean difference over the levels.
        """
        seeds = [
            s for s in self.seeds if (s in self.per_seed(a, self.rates(a)[0], self.plasticity))
        ]
        curves = {(arm, s): self.frontier(arm, s, outcome) for arm in (a, b) for s in seeds}
        common = stats.common_range(list(curves.values()))
        if common is None or common[1] - common[0] <= 0:
            empty = stats.t_interval([])
            return Comparison(a, b, outcome, empty, (), ())
        levels = tuple(common[0] + f * (common[1] - common[0]) for f in LEVELS)
        diffs = {
            s: [
                stats.at_plasticity(curves[(a, s)], L) - stats.at_plasticity(curves[(b, s)], L)
                for L in levels
            ]
            for s in seeds
        }
        per_level = tuple(
            stats.t_interval([diffs[s][i] for s in seeds]) for i in range(len(levels))
        )
        overall = stats.t_interval([float(np.mean(diffs[s])) for s in seeds])
        return Comparison(a, b, outcome, overall, levels, per_level)

    def compare_at_rate(self, a: str, b: str, outcome: str, lr: float) -> stats.Interval:
        """Arm ``a`` minus arm ``b`` on ``outcome`` at one shared learning rate (paired by seed)."""
        learned = self.learned_tasks(a, lr) if outcome == "forgetting" else None
        value = lambda r: self.outcome(r, outcome, learned)  # noqa: E731
        return stats.paired(self.per_seed(a, lr, value), self.per_seed(b, lr, value))

    def gain_over_head(
        self, arm: str, lr: float | None = None, split: str = "eval"
    ) -> stats.Interval:
        """Plasticity on ``split`` at a rate (default: the operating rate), over seeds."""
        return stats.t_interval(
            list(self.per_seed(arm, lr, lambda r: self.plasticity(r, split)).values())
        )

    def interval(self, arm: str, outcome: str, lr: float | None = None) -> stats.Interval:
        """An outcome of an arm at a rate (default: the operating rate), over seeds."""
        learned = self.learned_tasks(arm, lr) if outcome == "forgetting" else None
        return stats.t_interval(
            list(self.per_seed(arm, lr, lambda r: self.outcome(r, outcome, learned)).values())
        )

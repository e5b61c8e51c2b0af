"""The numbers a verdict is made of, read from the runs of a design.

A ``Study`` indexes the runs of arms × learning rates × seeds × task orders. Every quantity is
computed per run, averaged over task orders *within* a seed, and compared across arms seed by
seed (the seed is the replicate; methods run with one seed see the same data and order).

- *plasticity*: how much more a method's new heads reach than the head alone, averaged over the
  tasks: own-task accuracy right after training it, minus head-only's (same seed and order).
  Read on the validation split to choose rates, to match methods and to decide which tasks were
  learned; on the eval split to report.
- *learned*: a task whose validation accuracy right after training it is above its majority
  level, the 95% interval over seeds above it. Forgetting is measured only on learned tasks
  (deciding on the eval split and measuring on it would select tasks that came out high).
- *stability*: the log of the perplexity ratio (averaged on the log scale, so one run that
  breaks does not swamp the rest), forgetting of learned earlier tasks (accuracy right after
  training minus after the last task, eval split), and the output shift.
- *operating rate*: per arm, the rate with the highest mean validation plasticity.
- *frontier*: per arm, stability against validation plasticity across rates — each rate placed
  at its mean plasticity over seeds, each seed contributing its own stability — read at
  plasticity levels both compared frontiers reach, and only where both arms are shown to learn.
  The rates' positions are means, so an interval carries the stability's noise, not theirs.
- a run that *broke* (its loss or perplexity not a number) has no value: its rate has no mean
  on any outcome, is never the operating rate and is not on the frontier.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curlora import stats
from curlora.arms import Arm
from curlora.experiment.results import Results
from curlora.outcomes import outcome

#: Levels at which frontiers are compared, as fractions of the usable plasticity range.
LEVELS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Comparison:
    """Arm ``a`` minus arm ``b`` on one outcome at matched plasticity, seed by seed."""

    a: str
    b: str
    outcome: str
    interval: stats.Interval  # over seeds of the mean difference across the levels
    levels: tuple[float, ...]  # the plasticity levels compared (empty: see ``reason``)
    per_level: tuple[stats.Interval, ...]
    reason: str = ""  # why there are no levels
    tasks: tuple[str, ...] = ()  # the learned tasks a forgetting comparison is about


class Study:
    """The runs of a design, indexed by arm, learning rate, seed and task order."""

    def __init__(self, runs: list[Results], base_rank: int | None = None):
        if not runs:
            raise ValueError("A study needs at least one run.")
        self.runs = runs
        self.base_rank = base_rank
        self.index: dict[tuple[str, float, int, tuple], Results] = {}
        for r in runs:
            key = (Arm.of_spec(r.spec, base_rank).name, r.spec.lr, r.spec.seed, r.spec.tasks)
            if key in self.index and self.index[key].spec.group_key() != r.spec.group_key():
                raise ValueError(
                    f"Two runs of {key[0]} at rate {key[1]:g}, seed {key[2]} differ in other "
                    "settings; a study compares one configuration per arm and rate. Study them "
                    "apart."
                )
            self.index[key] = r
        self.head_only = {(s, t): r for (a, _, s, t), r in self.index.items() if a == "head-only"}
        self.has_validation = any((r.accuracy["split"] == "val").any() for r in runs)
        # Verdicts ask for the same run's plasticity thousands of times. Keyed by id(run): each
        # entry keeps its run alive, so no other object can take that id while it is cached.
        self._plasticity: dict[tuple[int, str], tuple[Results, float]] = {}
        self._selection: str | None = None

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

    def of_order(self, order: tuple) -> Study:
        """The study of one task order's runs alone, as if only that order had been run."""
        if order not in self.orders:
            raise ValueError(
                f"No runs in task order {' → '.join(order)}; the study has "
                + "; ".join(" → ".join(o) for o in self.orders)
                + "."
            )
        return Study([r for r in self.runs if r.spec.tasks == order], self.base_rank)

    def without(self, seed: int | None = None, order: tuple | None = None) -> Study:
        """The study without one seed's or one order's runs; left whole where none would remain
        (its only order: the variant re-reads the studies that ran others)."""
        kept = [
            r for r in self.runs if r.spec.seed != seed and (order is None or r.spec.tasks != order)
        ]
        return Study(kept, self.base_rank) if kept else self

    def of_seeds(self, seeds) -> Study:
        """The study of some seeds' runs alone (arms keep their names: the base rank is kept)."""
        chosen = [r for r in self.runs if r.spec.seed in set(seeds)]
        if not chosen:
            raise ValueError(f"No runs with seeds {list(seeds)}; the study has {self.seeds}.")
        return Study(chosen, self.base_rank)

    def contrast_rate(self, a: str, b: str) -> float | None:
        """The one rate a same-rate contrast uses: the highest rate both arms ran at (stated)."""
        shared = sorted(set(self.rates(a)) & set(self.rates(b)))
        return shared[-1] if shared else None

    def ablations(self, reference: str = "curlora") -> list[str]:
        """The study's ablations of ``reference``: other sampling rules and the SVD peer."""
        return [a for a in self.arms if a != reference and Arm.parse(a).role == "ablation"]

    def runs_of(self, arm: str, lr: float | None = None) -> list[Results]:
        """The runs of an arm (at one rate, or its operating rate)."""
        lr = self.operating_rate(arm) if lr is None else lr
        return [r for (a, rate, _, _), r in self.index.items() if a == arm and rate == lr]

    # ------------------------------------------------------------------ per-run quantities

    @property
    def selection_split(self) -> str:
        """Where rates are chosen and learning is decided: validation when the runs have one."""
        return "val" if self.has_validation else "eval"

    def partner(self, run: Results) -> Results | None:
        """The head-only run with the same seed and task order (the plasticity baseline)."""
        return self.head_only.get((run.spec.seed, run.spec.tasks))

    def plasticity(self, run: Results, split: str = "val") -> float:
        """Mean own-task accuracy gain over head-only (same seed and order), on ``split``."""
        key = (id(run), split)
        if key not in self._plasticity:
            self._plasticity[key] = (run, self._plasticity_of(run, split))
        return self._plasticity[key][1]

    def _plasticity_of(self, run: Results, split: str) -> float:
        base = self.partner(run)
        if base is None:
            return math.nan
        mine, theirs = run.accuracy_matrix(split), base.accuracy_matrix(split)
        if mine.isna().all().all():
            return math.nan
        return float(np.mean([mine.loc[t, t] - theirs.loc[t, t] for t in run.task_names]))

    def learned(self, arm: str, lr: float | None = None) -> dict[str, stats.Interval]:
        """Per task: own-task accuracy minus its majority level on the selection split, over seeds."""
        split = self.selection_split
        per_task: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in self.runs_of(arm, lr):
            R, majority = r.accuracy_matrix(split), r.majority(split)
            for t in r.task_names:
                per_task[t][r.spec.seed].append(R.loc[t, t] - majority[t])
        return {
            t: stats.t_interval([np.mean(v) for v in seeds.values()])
            for t, seeds in per_task.items()
        }

    def learned_tasks(self, arm: str, lr: float | None = None) -> list[str]:
        """Tasks shown learned: accuracy above the majority level, the interval above it."""
        return [t for t, i in self.learned(arm, lr).items() if i.shown_positive]

    def earlier(self, tasks: list[str]) -> list[str]:
        """Those of ``tasks`` trained before the last task in at least one order (forgettable)."""
        return [t for t in tasks if any(t in order[:-1] for order in self.orders)]

    def outcome(self, run: Results, name: str, tasks: list[str] | None = None) -> float:
        """A stability outcome of one run (``curlora.outcomes``); forgetting over ``tasks``."""
        return outcome(name).of_run(run, tasks)

    def per_seed(
        self, arm: str, lr: float | None, value: Callable[[Results], float]
    ) -> dict[int, float]:
        """``value`` of each run of an arm at a rate, averaged over task orders within each seed
        (NaN for a seed whose run broke there)."""
        by_seed: dict[int, list[float]] = defaultdict(list)
        broken: set[int] = set()
        for r in self.runs_of(arm, lr):
            if r.broke:
                # A diverged run has no value; averaging the seed's other orders (or dropping
                # the seed) would make the rate look as if it had not broken.
                broken.add(r.spec.seed)
                continue
            v = value(r)
            if not math.isnan(v):
                by_seed[r.spec.seed].append(v)
        means = {s: float(np.mean(v)) for s, v in by_seed.items()}
        return means | dict.fromkeys(broken, math.nan)

    def broke(self, arm: str, lr: float | None = None) -> bool:
        """Whether a run of an arm at a rate (default: its operating rate) broke: the rate then
        has no mean, on any outcome."""
        return any(r.broke for r in self.runs_of(arm, lr))

    def over_seeds(
        self, arm: str, lr: float | None, value: Callable[[Results], float]
    ) -> stats.Interval:
        """``value`` at a rate over seeds; undefined (NaN) where a run there broke."""
        if self.broke(arm, lr):
            return stats.t_interval([])
        return stats.t_interval(list(self.per_seed(arm, lr, value).values()))

    # ------------------------------------------------------------------ rates and frontiers

    @property
    def selection(self) -> str:
        """How operating rates are chosen, as the analysis plan says: ``"final_val_nll"`` (lowest
        mean validation NLL over every task after the last), or ``"own_plasticity"`` (highest
        validation gain over head-only) for runs that validated only the task just trained."""
        if self._selection is None:
            adapters = [r for r in self.runs if r.spec.method != "head-only"]
            known = all(not math.isnan(r.final_validation_nll()) for r in adapters)
            self._selection = "final_val_nll" if known else "own_plasticity"
        return self._selection

    def operating_rate(self, arm: str) -> float:
        """The arm's rate chosen on validation by ``selection`` (head-only: its only rate)."""
        rates = self.rates(arm)
        if arm != "head-only" and all(self.broke(arm, lr) for lr in rates):
            raise ValueError(
                f"At every rate of {arm} ({', '.join(f'{lr:g}' for lr in rates)}) a run broke "
                "(its loss or perplexity is not a number), so no operating rate can be chosen. "
                "Run it at lower rates too."
            )
        if arm == "head-only" or len(rates) == 1:
            return rates[0]
        if not self.has_validation:
            raise ValueError(
                f"{arm} ran at {len(rates)} rates but the runs have no validation split to choose "
                "one on; run with val_size > 0 (choosing on the reported split would bias it)."
            )
        if self.selection == "final_val_nll":
            value = lambda r: -r.final_validation_nll()  # noqa: E731 - lower NLL is better
        else:
            value = self.plasticity
        # A rate where a run broke is never chosen, as in the claims (curlora.matching).
        score = {
            lr: -np.inf
            if self.broke(arm, lr)
            else np.mean(list(self.per_seed(arm, lr, value).values()) or [-np.inf])
            for lr in rates
        }
        return max(rates, key=lambda lr: score[lr])

    def rate_plasticity(self, arm: str) -> dict[float, stats.Interval]:
        """Each rate's validation plasticity over seeds: its mean is where the rate sits on x
        (a rate where a run broke has none, so it is not on the frontier)."""
        return {
            lr: i for lr in self.rates(arm) if (i := self.over_seeds(arm, lr, self.plasticity)).n
        }

    def comparison_tasks(self, a: str, b: str) -> list[str]:
        """Earlier tasks both arms learned at their operating rates: what forgetting compares."""
        return self.earlier([t for t in self.learned_tasks(a) if t in self.learned_tasks(b)])

    def frontier(
        self, arm: str, seed: int, outcome: str, tasks: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One seed's frontier of an arm: ``outcome`` at each rate, placed at the rate's mean
        validation plasticity (so every seed's frontier spans the same x)."""
        x = self.rate_plasticity(arm)
        points = [
            (
                lr,
                x[lr].mean,
                self.per_seed(arm, lr, lambda r: self.outcome(r, outcome, tasks)).get(
                    seed, math.nan
                ),
            )
            for lr in self.rates(arm)
            if lr in x
        ]
        return stats.frontier(points)

    def _learning_floor(self, arm: str) -> float | None:
        """The lowest plasticity at which the arm is shown to learn (a rate whose interval is
        above zero), or None if it never is."""
        shown = [i.mean for i in self.rate_plasticity(arm).values() if i.shown_positive]
        return min(shown) if shown else None

    def compare(self, a: str, b: str, outcome: str) -> Comparison:
        """Arm ``a`` minus arm ``b`` on ``outcome`` at matched validation plasticity, seed by seed.

        The levels are fixed fractions of the plasticity range both frontiers cover and both
        arms are shown to learn in; each seed present in every run of both arms contributes its
        mean difference over the levels.
        """
        tasks = self.comparison_tasks(a, b) if outcome == "forgetting" else None
        empty = stats.t_interval([])
        if outcome == "forgetting" and not tasks:
            return Comparison(
                a, b, outcome, empty, (), (), "no earlier task was learned by both", ()
            )
        seeds = [
            s
            for s in self.seeds
            if all((arm, lr, s) in self._cells for arm in (a, b) for lr in self.rates(arm))
        ]
        # An arm never shown to learn is the more basic reason, so it is checked first.
        floors = [self._learning_floor(arm) for arm in (a, b)]
        if None in floors:
            who = [arm for arm, f in zip((a, b), floors, strict=True) if f is None]
            verb = "are" if len(who) > 1 else "is"
            reason = f"{' and '.join(who)} {verb} not shown to learn at any rate"
            return Comparison(a, b, outcome, empty, (), (), reason, tuple(tasks or ()))
        curves = {(arm, s): self.frontier(arm, s, outcome, tasks) for arm in (a, b) for s in seeds}
        common = stats.common_range(list(curves.values()))
        if common is None:
            return Comparison(
                a,
                b,
                outcome,
                empty,
                (),
                (),
                "their frontiers reach no common plasticity",
                tuple(tasks or ()),
            )
        lo, hi = max(common[0], *floors), common[1]
        if hi <= lo:
            return Comparison(
                a,
                b,
                outcome,
                empty,
                (),
                (),
                "they reach no common plasticity at which both are shown to learn",
                tuple(tasks or ()),
            )
        levels = tuple(lo + f * (hi - lo) for f in LEVELS)
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
        return Comparison(a, b, outcome, overall, levels, per_level, "", tuple(tasks or ()))

    @property
    def _cells(self) -> set[tuple[str, float, int]]:
        return {(a, lr, s) for a, lr, s, _ in self.index}

    def compare_at_rate(
        self, a: str, b: str, outcome: str, lr: float, lr_b: float | None = None
    ) -> stats.Interval:
        """Arm ``a`` minus arm ``b`` on ``outcome`` at one shared learning rate, or ``a`` at
        ``lr`` against ``b`` at ``lr_b`` (paired by seed)."""
        tasks = self.comparison_tasks(a, b) if outcome == "forgetting" else None
        value = lambda r: self.outcome(r, outcome, tasks)  # noqa: E731
        lr_b = lr if lr_b is None else lr_b
        if self.broke(a, lr) or self.broke(b, lr_b):
            return stats.t_interval([])
        return stats.paired(self.per_seed(a, lr, value), self.per_seed(b, lr_b, value))

    def matched_pair(self, a: str, b: str) -> tuple[float, float, stats.Interval] | None:
        """The rates of ``a`` and ``b``, each shown to learn, whose validation plasticity is
        closest (paired by seed): (rate of a, rate of b, a − b plasticity), or None.

        The discrete reading of equal learning, for when the frontiers' shown-to-learn parts
        meet at no interval of plasticity (e.g. each arm is shown to learn at one rate only).
        """
        shown = {
            arm: [lr for lr, i in self.rate_plasticity(arm).items() if i.shown_positive]
            for arm in (a, b)
        }
        pairs = [
            (
                la,
                lb,
                stats.paired(
                    self.per_seed(a, la, self.plasticity), self.per_seed(b, lb, self.plasticity)
                ),
            )
            for la in shown[a]
            for lb in shown[b]
        ]
        pairs = [p for p in pairs if p[2].n > 1]
        return min(pairs, key=lambda p: abs(p[2].mean)) if pairs else None

    def gain_over_head(
        self, arm: str, lr: float | None = None, split: str = "eval"
    ) -> stats.Interval:
        """Plasticity on ``split`` at a rate (default: the operating rate), over seeds."""
        return self.over_seeds(arm, lr, lambda r: self.plasticity(r, split))

    def interval(self, arm: str, outcome: str, lr: float | None = None) -> stats.Interval:
        """An outcome of an arm at a rate (default: its operating rate), over seeds; forgetting
        over the earlier tasks the arm learned at that rate."""
        tasks = self.earlier(self.learned_tasks(arm, lr)) if outcome == "forgetting" else None
        if outcome == "forgetting" and not tasks:
            return stats.t_interval([])
        return self.over_seeds(arm, lr, lambda r: self.outcome(r, outcome, tasks))

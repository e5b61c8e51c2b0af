"""The numbers protocol 2's verdicts are made of: continued-training runs by arm, rate and seed.

Learning and forgetting share one unit, nats per token:

- *learning*: the target domain's held-out NLL lost (validation files choose and match rates;
  evaluation files are reported);
- *forgetting*: held-out Wikipedia's NLL gained — the log of its perplexity ratio, so the
  analysis layer's perplexity-ratio machinery (window resampling included) reads it as is;
- *operating rate*: per arm, the rate with the lowest mean validation NLL after training, target
  domain and held-in Wikipedia averaged (it rewards learning and keeping alike);
- *frontier*: forgetting against validation learning across an arm's rates.

A ``DomainStudy`` reduces to the same ``Cells`` as the paper's protocol, so the registered
claims (``resources/analysis_plan_domain.toml``) are read by the same bootstrap, matching and
Holm code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from curlora import stats
from curlora.arms import Arm
from curlora.cells import Cells
from curlora.design_check import domain_check
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_spec import DomainSpec
from curlora.matching import chosen_rate, observed, restrict
from curlora.plan import AnalysisPlan, load_plan

#: Where protocol 2's runs are told apart from the paper protocol's in a study's orders.
ORDER = ("continued training",)


class DomainStudy:
    """Continued-training runs indexed by arm, learning rate and seed."""

    def __init__(self, runs: list[DomainResults], base_rank: int | None = None):
        if not runs:
            raise ValueError("A study needs at least one run.")
        self.runs, self.base_rank = runs, base_rank
        self.index: dict[tuple[str, float, int], DomainResults] = {}
        for r in runs:
            key = (Arm.of_spec(r.spec, base_rank).name, r.spec.lr, r.spec.seed)
            if key in self.index and self.index[key].spec.group_key() != r.spec.group_key():
                raise ValueError(
                    f"Two runs of {key[0]} at rate {key[1]:g}, seed {key[2]} differ in other "
                    "settings (domain, steps, windows…); a study compares one configuration per "
                    "arm and rate. Study them apart."
                )
            self.index[key] = r

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
        """One 'order': continued training has no task sequence to vary."""
        return [ORDER]

    def runs_of(self, arm: str, lr: float | None = None) -> list[DomainResults]:
        """The runs of an arm (at one rate), in seed order."""
        return [
            r
            for (a, rate, _), r in sorted(self.index.items(), key=lambda kv: kv[0][2])
            if a == arm and (lr is None or rate == lr)
        ]

    def without(self, seed: int | None = None, order: tuple | None = None) -> DomainStudy:
        """The study without one seed (leaving out an order leaves it whole)."""
        if order is not None:
            return self  # continued training has no task order to leave out
        return DomainStudy([r for r in self.runs if r.spec.seed != seed], self.base_rank)

    def table(self) -> pd.DataFrame:
        """Per run: arm, rate, seed, learning and forgetting (nats per token), trainable count."""
        return pd.DataFrame(
            [
                {"arm": a, "lr": lr, "seed": s, **r.summary()}
                for (a, lr, s), r in sorted(self.index.items())
            ]
        )

    def per_seed(self, arm: str, lr: float, value: Callable[[DomainResults], float]) -> dict:
        """``value`` of each seed's run of an arm at a rate."""
        return {r.spec.seed: value(r) for r in self.runs_of(arm, lr)}

    def arm_seeds(self, plan: AnalysisPlan | None = None) -> dict[str, tuple[int, ...]]:
        """Per arm, the seeds that ran every rate of it: the seeds its operating rate, its
        table rows and its figure points are read on."""
        cells = self.cells(load_plan(protocol="domain") if plan is None else plan)
        return {arm: restrict(cells, [arm]).seeds for arm in self.arms}

    def operating_rate(self, plan: AnalysisPlan | None = None) -> dict[str, float]:
        """Per arm, the rate the registered claims read it at: the lowest mean validation NLL
        after training, over the seeds that ran every rate of the arm (an arm where a run broke
        at every rate has none, and is left out)."""
        cells = self.cells(load_plan(protocol="domain") if plan is None else plan)
        chosen = {}
        for arm in self.arms:
            # The claims' own rule (curlora.matching), so tables, figures and verdicts name one
            # rate: a rate where a run broke, or that no seed scores, is never chosen.
            if (lr := chosen_rate(observed(cells, arm)[1], arm)) is not None:
                chosen[arm] = lr
        return chosen

    def frontier_table(self, confidence: float = 0.95) -> pd.DataFrame:
        """Per arm and rate: learning (validation, evaluation) and forgetting (held-out
        Wikipedia), means with t-intervals over the arm's seeds (``arm_seeds``), in nats per
        token; undefined (NaN) at a rate where a run broke, as in the claims."""
        rows = []
        chosen, seeds = self.operating_rate(), self.arm_seeds()
        for arm in self.arms:
            for lr in self.rates(arm):
                runs = [r for r in self.runs_of(arm, lr) if r.spec.seed in seeds[arm]]
                broke = sum(r.broke for r in runs)
                row = {
                    "arm": arm,
                    "lr": lr,
                    "seeds": len(runs),
                    "broke": broke,
                    "operating": lr == chosen.get(arm),
                }
                for name, value in (
                    ("learning_val", lambda r: r.learning("val")),
                    ("learning_eval", lambda r: r.learning("eval")),
                    ("forgetting", lambda r: r.forgetting("eval")),
                ):
                    interval = stats.t_interval([value(r) for r in runs], confidence)
                    row |= {
                        name: np.nan if broke else interval.mean,
                        f"{name}_lo": np.nan if broke else interval.lo,
                        f"{name}_hi": np.nan if broke else interval.hi,
                    }
                row["trainable"] = self.runs_of(arm, lr)[0].parameters.get("adapter")
                rows.append(row)
        return pd.DataFrame(rows)

    def cells(self, plan: AnalysisPlan) -> Cells:
        """The per-seed arrays the registered claims are read from (``curlora.cells.Cells``)."""
        # Protocol 2 has one learning axis and one selection rule; a plan naming others would
        # otherwise be read with these without a word.
        if (plan.plasticity_axis, plan.selection) != ("nll", "domain_val_nll"):
            raise ValueError(
                f"Protocol 2 reads learning as the domain's validation NLL drop and chooses rates "
                f"by 'domain_val_nll'; the plan asks for axis {plan.plasticity_axis!r} and "
                f"selection {plan.selection!r}. Use plasticity_axis = 'nll' and selection = "
                "'domain_val_nll' (analysis_plan_domain.toml)."
            )
        seeds = tuple(self.seeds)
        index = {s: k for k, s in enumerate(seeds)}
        rates = {a: tuple(self.rates(a)) for a in self.arms}
        cells = [(a, lr) for a in rates for lr in rates[a]]

        def per_seed(cell, value) -> np.ndarray:
            out = np.full(len(seeds), np.nan)
            for s, v in self.per_seed(*cell, value).items():
                out[index[s]] = v
            return out

        tokens = None
        windows = {}
        for c in cells:
            grid = None
            for r in self.runs_of(*c):
                change, tok = r.windows("general-eval")
                if tokens is None:
                    tokens = tok
                elif not np.array_equal(tok, tokens):
                    raise ValueError(
                        "The runs measured Wikipedia on different windows; a study reads one "
                        "window sample (same corpus, ppl_windows and ppl_max_length) for all."
                    )
                if grid is None:
                    grid = np.full((len(seeds), len(tok)), np.nan)
                grid[index[r.spec.seed]] = change
            windows[c] = grid
        return Cells(
            seeds=seeds,
            rates=rates,
            x={
                "nll": {c: per_seed(c, lambda r: r.learning("val")) for c in cells},
                "eval-nll": {c: per_seed(c, lambda r: r.learning("eval")) for c in cells},
            },
            score={c: per_seed(c, lambda r: -r.selection_score()) for c in cells},
            additive={
                "learning_eval": {c: per_seed(c, lambda r: r.learning("eval")) for c in cells},
                "forgetting_val": {c: per_seed(c, lambda r: r.forgetting("val")) for c in cells},
            },
            windows=windows,
            tokens=np.asarray(tokens, dtype=float),
            axis="nll",
            selection=plan.selection,
            x_label="learned: domain validation NLL drop (nats/token)",
            design=domain_check(self, plan),
            broken={
                c: np.isin(seeds, [r.spec.seed for r in self.runs_of(*c) if r.broke]) for c in cells
            },
        )


def domain_specs(
    model: str,
    domain: str,
    rank: int,
    arms: list[str],
    lrs: dict[str, list[float]],
    seeds: list[int],
    run: dict[str, int] | None = None,
) -> list[DomainSpec]:
    """Every arm × rate × seed of a continued-training study (``run``: other ``DomainSpec``
    fields shared by all, e.g. steps, block_length, window counts)."""
    missing = [a for a in arms if a not in lrs]
    if missing:
        raise ValueError(
            f"No learning rates for arm(s) {missing}; give lrs a list for each of {arms}."
        )
    base = DomainSpec(model=model, domain=domain, rank=rank, **(run or {}))
    return [
        base.replace(**Arm.parse(arm).changes(), lr=lr, seed=seed)
        for arm in arms
        for lr in lrs[arm]
        for seed in seeds
    ]


def design_parameters(plan: AnalysisPlan, seeds: list[int] | None = None) -> dict:
    """The ``domain_specs`` arguments (notebook 06's parameters) of protocol 2's registered
    design, at its seeds or at ``seeds``."""
    d = plan.design
    return {
        "model": d["model"],
        "domain": d["domain"],
        "rank": d["rank"],
        "arms": list(d["rates"]),
        "lrs": d["rates"],
        "seeds": d["seeds"] if seeds is None else seeds,
        "run": d["run"],
    }


def domain_design(plan: AnalysisPlan) -> list[DomainSpec]:
    """The specs protocol 2's registered plan names: every arm × rate × seed."""
    return domain_specs(**design_parameters(plan))

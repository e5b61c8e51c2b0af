"""How a study's runs stand against its registered plan's design: what differs, what is missing.

Verdicts read off runs that are not the plan's design read those runs under the plan's rules;
they are not its confirmatory test. Verdicts read before the design's last runs exist are an
interim look, which neither plan registers. Both protocols' studies are checked here, so their
pages say so in the same words.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curlora.arms import Arm
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.presets import PRESETS
from curlora.plan import AnalysisPlan

if TYPE_CHECKING:  # only for hints: both studies' modules import this one
    from curlora.domain_study import DomainStudy
    from curlora.study import Study

#: Spec fields an arm or the grid sets per run; the other fields are the design's settings.
PER_RUN = ("method", "sampling", "lr", "seed", "tasks")


@dataclass(frozen=True)
class DesignCheck:
    """A study's runs against the plan's design, as phrases a page prints."""

    #: False when the plan names no design to compare with (nothing was checked).
    checked: bool = False
    #: Settings, task orders, rates or seeds the design does not have.
    differs: tuple[str, ...] = ()
    #: Runs the design has that are not there (yet).
    missing: tuple[str, ...] = ()
    #: Arms read beside the design that the plan does not name (their readings are exploratory).
    outside: tuple[str, ...] = ()

    @property
    def interim(self) -> bool:
        """The design's runs, but not all of them yet."""
        return self.checked and not self.differs and bool(self.missing)


def _precision(autocast: str | None) -> str:
    return "no autocast" if autocast is None else f"{autocast.replace('bfloat', 'bf')} autocast"


#: How a page names a setting: a template for the runs' value, and how the plan's is shown.
_LABELS: dict[str, tuple[str, Any]] = {
    "train_size": ("{} training examples per task", str),
    "val_size": ("{} validation examples per task", str),
    "eval_size": ("{} evaluation examples per task", str),
    "epochs": ("{} epoch(s)", str),
    "batch_size": ("batch size {}", str),
    "max_length": ("{} tokens per example", str),
    "head_lr": ("head learning rate {}", str),
    "autocast": ("{}", _precision),
    "ppl_windows": ("{} perplexity windows", str),
    "ppl_max_length": ("{} tokens per perplexity window", str),
    "steps": ("{} training steps", str),
    "block_length": ("{} tokens per training block", str),
}


def setting_text(name: str, value: object, planned: object) -> str:
    """One setting that differs from the plan's, as a page names it."""
    template, shown = _LABELS.get(name, (f"{name} {{}}", str))
    return f"{template.format(shown(value))} (the plan's: {shown(planned)})"


def rates_text(rates: Iterable[float]) -> str:
    """Learning rates as a page lists them."""
    return ", ".join(f"{lr:g}" for lr in rates)


def seed_text(seeds: Iterable[int]) -> str:
    """Seeds as a reader scans them: a run of consecutive seeds as a range (0–4)."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _names(arms: Iterable[str]) -> str:
    shown = [Arm.parse(a).display for a in dict.fromkeys(arms)]
    return ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]


def _settings(study: Study | DomainStudy, planned: Mapping[str, object]) -> list[str]:
    """Every value a design setting takes in any run that is not the plan's (with the arms that
    ran it, where the runs disagree among themselves)."""
    seen: dict[str, dict[object, list[str]]] = {}
    for r in study.runs:
        arm = Arm.of_spec(r.spec, study.base_rank)
        for name in planned:
            # Rank-1 LoRA and head-only do not run at the study's rank: only base-rank arms do.
            if name == "rank" and (arm.method == "head-only" or arm.rank is not None):
                continue
            seen.setdefault(name, {}).setdefault(getattr(r.spec, name), []).append(arm.name)
    out = []
    for name, by_value in seen.items():
        for value, arms in by_value.items():
            if value != planned[name]:
                who = f" ({_names(arms)})" if len(by_value) > 1 else ""
                out.append(setting_text(name, value, planned[name]) + who)
    return out


def _same_rates(a: Iterable[float], b: Iterable[float]) -> bool:
    a, b = sorted(a), sorted(b)
    return len(a) == len(b) and all(math.isclose(x, y) for x, y in zip(a, b, strict=True))


def _grouped(found: dict[tuple[int, ...], list[str]], cells: int, whole, part) -> list[str]:
    """Seed sets found per cell as phrases: one ``whole(seeds)`` when every cell shares the
    same set, else one ``part(cells, seeds)`` per set."""
    if len(found) == 1 and len(next(iter(found.values()))) == cells:
        return [whole(next(iter(found)))]
    return [part("; ".join(where), seeds) for seeds, where in found.items()]


def _grid(
    study: Study | DomainStudy, expected: Mapping[str, tuple[list[float], list[int]]]
) -> tuple[list, list]:
    """(differs, missing) of a study's arms, rates and seeds against the plan's grid: per arm,
    its rates and seeds."""
    differs, missing = [], []
    ran: dict[tuple[str, float], set[int]] = {}
    for key in study.index:
        ran.setdefault((key[0], key[1]), set()).add(key[2])
    gaps: dict[tuple[int, ...], list[str]] = {}
    beyond: dict[tuple[int, ...], list[str]] = {}
    cells = 0
    for arm, (rates, seeds) in expected.items():
        name = Arm.parse(arm).display
        if arm not in study.arms:
            missing.append(f"no {name} runs")
            continue
        have = study.rates(arm)
        if not _same_rates(have, rates):
            extra = any(not any(math.isclose(h, p) for p in rates) for h in have)
            (differs if extra else missing).append(
                f"{name} at rates {rates_text(have)} (the plan's: {rates_text(sorted(rates))})"
            )
        for lr in have:
            if any(math.isclose(lr, p) for p in rates):
                cells += 1
                where = f"{name} at {lr:g}"
                gap = tuple(sorted(set(seeds) - ran[(arm, lr)]))
                extra_seeds = tuple(sorted(ran[(arm, lr)] - set(seeds)))
                if gap:
                    gaps.setdefault(gap, []).append(where)
                if extra_seeds:
                    beyond.setdefault(extra_seeds, []).append(where)
    planned = sorted({s for _, seeds in expected.values() for s in seeds})
    missing += _grouped(
        gaps,
        cells,
        lambda gap: f"not at seeds {seed_text(gap)} of the plan's {seed_text(planned)}",
        lambda where, gap: f"{where}: not at seeds {seed_text(gap)}",
    )
    differs += _grouped(
        beyond,
        cells,
        lambda extra: f"also seeds {seed_text(extra)}, which the plan does not run",
        lambda where, extra: f"{where}: also seeds {seed_text(extra)}",
    )
    return differs, missing


def _check(
    study: Study | DomainStudy, planned: Mapping[str, object], expected: Mapping, differs: list
) -> DesignCheck:
    grid_differs, missing = _grid(study, expected)
    outside = [a for a in study.arms if a not in expected]
    return DesignCheck(
        checked=True,
        differs=tuple(_settings(study, planned) + differs + grid_differs),
        missing=tuple(missing),
        outside=(f"{_names(outside)} (not in the plan)",) if outside else (),
    )


def paper_check(study: Study, plan: AnalysisPlan) -> DesignCheck:
    """A paper-protocol study's runs against the plan's design: settings, the task order, arms,
    rates and seeds of the main comparison, the sampling ablation or the secondary peers,
    whichever it holds."""
    d = plan.design
    if "preset" not in d:
        return DesignCheck()
    paper = tuple(d["tasks"])
    headline = paper if d.get("headline_order", "paper") == "paper" else paper[::-1]
    spec = PRESETS[d["preset"]].replace(model=d["model"], tasks=paper, rank=d["rank"])
    planned = {
        f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in PER_RUN
    }
    main, ablation = list(d["main_arms"]), list(d["ablation_arms"])
    peers = plan.secondary_arms()
    has_main = any(a in study.arms for a in set(main) - set(ablation))
    has_ablation = any(a in study.arms for a in set(ablation) - set(main))
    has_peers = any(a in study.arms for a in peers)
    orders, differs = study.orders, []
    tasks = list(dict.fromkeys(t for o in orders for t in o))
    reverse = orders == [headline[::-1]]
    if set(tasks) != set(paper):
        differs.append(f"tasks {', '.join(tasks)} (the plan's: {', '.join(paper)})")
    elif reverse:
        differs.append(
            f"the task order {' → '.join(headline[::-1])} alone: the plan reads it only to "
            "re-check its headline order's verdicts"
            + ("; it runs the sampling ablation in the headline order only" if has_ablation else "")
        )
    elif len(orders) == 1 and orders != [headline]:
        differs.append(f"task order {' → '.join(orders[0])} (the plan's: {' → '.join(headline)})")
    elif len(orders) > 1:
        differs.append(
            f"{len(orders)} task orders, averaged within each seed (the plan's headline reads "
            f"{' → '.join(headline)} alone)"
        )
    seeds = d["reverse_order_seeds"] if reverse else d["paper_order_seeds"]
    rates = plan.rates()
    # A study of the arms both share (CURLoRA, head-only) reads the main comparison's claims.
    expected = {}
    if has_main or not has_ablation:
        expected.update({arm: (rates[arm], seeds) for arm in main})
    if has_peers:  # at their own seeds; the main arms stay held to the headline's
        expected.update({arm: (rates[arm], d["secondary"]["seeds"]) for arm in peers})
    if has_ablation:
        for arm in ablation:
            expected.setdefault(arm, (rates[arm], d["ablation_seeds"]))
    return _check(study, planned, expected, differs)


def domain_check(study: DomainStudy, plan: AnalysisPlan) -> DesignCheck:
    """A continued-training study's runs against its plan's design: settings, arms, rates and
    seeds."""
    d = plan.design
    # Every setting, not only those the plan spells out: its comments register the rest as
    # the spec's defaults (constant rate, no warmup, fp32), and a run changing one must show.
    spec = DomainSpec(model=d["model"], domain=d["domain"], rank=d["rank"], **d["run"])
    planned = {
        f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in PER_RUN
    }
    expected = {arm: (rates, d["seeds"]) for arm, rates in d["rates"].items()}
    return _check(study, planned, expected, [])

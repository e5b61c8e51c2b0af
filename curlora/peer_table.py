"""Which method forgets least for the same learning: every arm of a study against CURLoRA and
against LoRA at matched plasticity, beside its trainable parameters and, where the benchmark
measured them, its train-step time and peak memory.

The comparisons are the plan's matched statistic (``curlora.matching``) on general-knowledge
forgetting (the perplexity ratio on held-out Wikipedia), read by the same bootstrap as the
registered claims. A pair the plan's claims name shows that claim's reading; a secondary peer
against CURLoRA or LoRA (registered by an amendment) is read alone at the plan's confidence,
outside any Holm family, as the plan says; every other pair is exploratory, Holm-adjusted in a
family of its own. The table's caption states which is which.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from curlora.arms import Arm
from curlora.cells import Cells
from curlora.claim_text import level_text, range_text, value_text
from curlora.claims import Reading, read_claims, study_cells
from curlora.domain_study import DomainStudy
from curlora.matching import chosen_rate, observed
from curlora.plan import AnalysisPlan, Claim
from curlora.readings import markdown_table
from curlora.study import Study

#: The arms every other is compared against: the paper's method and the one it set out to beat.
REFERENCES = ("curlora", "lora")
#: General-knowledge forgetting, as both protocols' plans read it (log perplexity ratio).
OUTCOME = "ppl_ratio"
#: What a comparison's verdict says about the row's arm.
WORDS = {
    "holds": "forgets less",
    "contradicted": "forgets more",
    "undecided": "undecided",
}
#: How the benchmark names its group of every method side by side.
BENCH_GROUP = "the peers"


@dataclass(frozen=True)
class Cost:
    """One method's train step as the benchmark measured it."""

    step_ms: float
    peak_mib: float


@dataclass(frozen=True)
class BenchCosts:
    """The benchmark's peers group: each method's cost, and the machine's fp32 product rate."""

    costs: dict[str, Cost]
    title: str
    fp32_gflops: float
    model: str
    rank: int

    def fits(self, spec) -> bool:
        """Whether the benchmark timed the runs' own model and rank."""
        return (spec.model, spec.rank) == (self.model, self.rank)


def bench_costs(path: str | Path) -> BenchCosts | None:
    """The peers group of a benchmark's JSON (``benchmarks/bench.py --only peers``), or None
    when the file does not exist or holds no such group."""
    path = Path(path)
    if not path.exists():
        return None
    groups = json.loads(path.read_text())["groups"]
    title = next((t for t in groups if BENCH_GROUP in t), None)
    if title is None:
        return None
    ceiling = [r for rows in groups.values() for r in rows if r.get("method") == "float32"]
    rows = groups[title]
    if not rows:
        return None
    return BenchCosts(
        {r["method"]: Cost(1000 * r["median_s"], r["peak_mb"]) for r in rows},
        title,
        ceiling[0]["gflops"] if ceiling else math.nan,
        rows[0]["model"],
        rows[0]["rank"],
    )


def peer_claims(arms: list[str]) -> tuple[Claim, ...]:
    """Each arm against each reference arm the study ran, at matched plasticity; the two
    references against each other once (CURLoRA minus LoRA, as the registered claim reads)."""
    return tuple(
        Claim(
            key=f"{arm}-vs-{ref}-peer",
            statement=f"{Arm.parse(arm).display} forgets less than {Arm.parse(ref).display} "
            "for the same learning",
            kind="matched",
            arm=arm,
            outcome=OUTCOME,
            against=ref,
        )
        for ref in REFERENCES
        if ref in arms
        for arm in arms
        if arm != ref and not (arm in REFERENCES and REFERENCES.index(arm) > REFERENCES.index(ref))
    )


#: A verdict read from the other arm's side.
_MIRROR = {"holds": "contradicted", "contradicted": "holds", "undecided": "undecided"}


@dataclass(frozen=True)
class Side:
    """One arm minus one reference at matched learning, whichever way the family read it."""

    value: float
    lo: float  # at the comparison's Holm step's level
    hi: float
    level: float
    verdict: str
    reason: str = ""  # why there is no estimate
    source: str = ""  # "claim" or "secondary": a reading the plan registers (else exploratory)

    @classmethod
    def of(
        cls,
        by_pair: dict[tuple[str, str], Reading],
        arm: str,
        ref: str,
        sources: Mapping[str, str] = MappingProxyType({}),
    ) -> Side | None:
        """``arm`` minus ``ref``: read directly, or as the negated ``ref`` minus ``arm``
        (``sources``: claim key → how the plan registers that reading)."""
        sign, r = (
            (1, by_pair.get((arm, ref))) if (arm, ref) in by_pair else (-1, by_pair.get((ref, arm)))
        )
        if r is None:
            return None
        if not r.readable:
            return cls(
                math.nan, math.nan, math.nan, math.nan, "undecided", r.reason or "no estimate"
            )
        lo, hi = sorted(sign * v for v in r.interval(adjusted=True))
        verdict = r.verdict if sign == 1 else _MIRROR[r.verdict]
        return cls(
            sign * r.estimate.value, lo, hi, r.level, verdict, source=sources.get(r.claim.key, "")
        )

    @property
    def readable(self) -> bool:
        return math.isfinite(self.value)


@dataclass(frozen=True)
class PeerTable:
    """The table, the sentence that reads it, and the caption that says how it was made."""

    table: pd.DataFrame
    sentence: str
    caption: str
    readings: tuple[Reading, ...]


def _compared(arms: list[str]) -> list[str]:
    """The arms a table lists: every adapter (head-only learns nothing beyond itself)."""
    compared = [a for a in arms if a != "head-only"]
    if not compared:
        raise ValueError(
            "The study has no adapter arm (only head-only); the table compares methods that "
            "adapt the model. Add e.g. curlora and lora to the arms."
        )
    return compared


def _registered(readings, arms: list[str], outcome: str = OUTCOME) -> list[Reading]:
    """The plan's own readings of matched comparisons on ``outcome`` among ``arms``."""
    return [
        r
        for r in readings
        if r.claim.kind == "matched"
        and r.claim.outcome == outcome
        and r.claim.arm in arms
        and r.claim.against in arms
    ]


def _operating(cells: Cells, arm: str) -> tuple[float, float, float] | None:
    """(rate, plasticity, log perplexity ratio) at the arm's operating rate, as observed on the
    seeds that ran every rate of the arm (as the claims and the frontier table read it); None
    where no rate can be chosen."""
    cells, means = observed(cells, arm)
    # A broken run has no score either, but it did validate: only then is the advice below wrong.
    if not any(
        (np.isfinite(cells.score[(arm, lr)]) | cells.broken.get((arm, lr), False)).any()
        for lr in cells.rates[arm]
    ):
        raise ValueError(
            f"{arm} has no validation score at any rate, so no operating rate can be chosen; "
            "run it with val_size > 0 (the domain protocol: with validation files)."
        )
    lr = chosen_rate(means, arm)
    if lr is None:  # every rate has a broken run, or no seed ran all of them
        return None
    return lr, float(means.x(arm, lr)[0]), float(means.outcome(OUTCOME, arm, lr)[0])


#: How a cell marks a reading the plan registers.
_SOURCE = {
    "claim": "; the registered claim",
    "secondary": "; registered secondary, not Holm-adjusted",
}


#: The plan's second outcome for its secondary peers: earlier tasks' accuracy lost (paper protocol).
FORGETTING = "forgetting"


def _secondary(claim: Claim, plan: AnalysisPlan) -> bool:
    """Whether the plan registers ``claim`` as a secondary comparison: one of its peers against
    one of the references."""
    peers = set(plan.design.get("secondary", {}).get("peers", [])) & set(plan.secondary_arms())
    pair = set(claim.arms())
    return len(pair & peers) == 1 and len(pair & set(REFERENCES)) == 1


def _cell(side: Side | None, outcome: str = OUTCOME) -> str:
    if side is None:
        return "—"
    if not side.readable:
        return f"not read: {side.reason}"
    source = _SOURCE.get(side.source, "")
    return (
        f"{value_text(outcome, side.value)} ({range_text(outcome, side.lo, side.hi)} at "
        f"{level_text(side.level)}{source}): {WORDS[side.verdict]}"
    )


def _on_forgetting(claim: Claim) -> Claim:
    """The same comparison read on earlier tasks' forgetting."""
    return replace(claim, key=f"{claim.key}-{FORGETTING}", outcome=FORGETTING)


def _alone(study, plan: AnalysisPlan, claims, replicates, cells) -> list[Reading]:
    """Each claim read as a family of one, at the plan's confidence (no multiplicity)."""
    single = replace(plan, familywise_alpha=1 - plan.confidence)
    return [
        read_claims([study], replace(single, claims=(c,)), replicates, [cells])[0] for c in claims
    ]


def forgets_least(
    study: Study | DomainStudy,
    plan: AnalysisPlan,
    costs: BenchCosts | None = None,
    replicates: int | None = None,
    registered: list[Reading] | None = None,
) -> PeerTable:
    """Every adapter arm of ``study`` at matched plasticity against CURLoRA and LoRA, ordered
    by verdict against the first reference the study ran, then by estimate. A comparison the
    plan's claims name shows its registered reading (``registered``: the plan's readings of this
    study, read here when not given); one it registers as secondary is read alone at the plan's
    confidence; both stay out of the exploratory family."""
    arms = _compared(study.arms)
    cells = study_cells(study, plan)
    if registered is None:
        registered = read_claims([study], plan, replicates, [cells])
    own = _registered(registered, arms)
    taken = {frozenset(r.claim.arms()) for r in own}
    claims = [c for c in peer_claims(arms) if frozenset(c.arms()) not in taken]
    # The plan reads its secondary peers with plain 95% intervals, outside any Holm family, on
    # perplexity and (in the paper protocol) on earlier tasks' forgetting.
    second = [c for c in claims if _secondary(c, plan)]
    secondary_ppl = _alone(study, plan, second, replicates, cells)
    secondary_forgetting = (
        _alone(study, plan, [_on_forgetting(c) for c in second], replicates, cells)
        if second and isinstance(study, Study)
        else []
    )
    own_forgetting = _registered(registered, arms, FORGETTING) if secondary_forgetting else []
    forgetting = [*own_forgetting, *secondary_forgetting]
    secondary = [*secondary_ppl, *secondary_forgetting]
    claims = tuple(c for c in claims if c not in second)
    family = replace(plan, claims=claims)
    readings = read_claims([study], family, replicates, [cells]) if claims else []
    by_pair = {(r.claim.arm, r.claim.against): r for r in [*own, *secondary_ppl, *readings]}
    forgetting_pairs = {(r.claim.arm, r.claim.against): r for r in forgetting}
    keys = {r.claim.key: "claim" for r in [*own, *own_forgetting]}
    keys |= {r.claim.key: "secondary" for r in secondary}
    refs = [ref for ref in REFERENCES if ref in arms]
    label, scale = cells.plasticity_label
    # The benchmark timed the base rank: read it off an arm run at the study's own rank.
    spec = next(
        r.spec
        for r in study.runs
        if r.spec.method != "head-only" and Arm.of_spec(r.spec, study.base_rank).rank is None
    )
    # Costs timed on another model or rank would mislead; the caption says why they are absent.
    other = costs is not None and not costs.fits(spec)
    costs = None if other else costs
    rows, order = [], []
    for arm in arms:
        chosen = _operating(cells, arm)
        lr, x, y = chosen or (cells.rates[arm][0], math.nan, math.nan)
        runs = study.runs_of(arm, lr)
        row = {
            "arm": Arm.parse(arm).display,
            "trainable": int(runs[0].parameters.get("adapter", 0)),
            "operating rate": f"{lr:g}" if chosen else "none (every rate broke or lacks a seed)",
            f"{label} at it": f"{x * scale:+.3g}" if chosen else "—",
            "perplexity change at it": value_text(OUTCOME, y),
        }
        for ref in refs:
            row[f"vs {Arm.parse(ref).display}, same learning (Holm interval)"] = (
                "—" if arm == ref else _cell(Side.of(by_pair, arm, ref, keys))
            )
        for ref in refs if forgetting else []:
            row[f"vs {Arm.parse(ref).display}, earlier tasks' forgetting (registered only)"] = (
                "—" if arm == ref else _cell(Side.of(forgetting_pairs, arm, ref, keys), FORGETTING)
            )
        if costs is not None:
            cost = costs.costs.get(arm)
            row["train step (ms)"] = f"{cost.step_ms:.0f}" if cost else "not benchmarked"
            row["peak memory (MiB)"] = f"{cost.peak_mib:.0f}" if cost else "not benchmarked"
        rows.append(row)
        first = Side.of(by_pair, arm, refs[0]) if refs and arm != refs[0] else None
        if first is None or not first.readable:
            order.append((1, 0.0) if first is None else (3, 0.0))
        else:
            order.append((_RANK[first.verdict], first.value))
    ranked = sorted(range(len(rows)), key=lambda k: order[k])
    table = pd.DataFrame([rows[k] for k in ranked]).set_index("arm")
    caption = _caption(plan, readings, costs, refs, len(own), len(secondary_ppl))
    if other:
        caption += (
            " No train-step costs: the benchmark timed another model or rank than these runs' "
            f"(`{spec.model}`, r{spec.rank})."
        )
    if forgetting:
        caption += (
            " Earlier tasks' forgetting (accuracy lost on the tasks trained before the last, "
            "in points) is read only where the plan registers it: its claims and its "
            "secondary peers."
        )
    sentence = _sentence(by_pair, arms, refs, keys)
    return PeerTable(table, sentence, caption, (*secondary, *readings))


#: Rows in order of their verdict against the first reference, then of the estimate.
_RANK = {"holds": 0, "undecided": 1, "contradicted": 2}


def _sentence(
    by_pair: dict[tuple[str, str], Reading],
    arms: list[str],
    refs: list[str],
    sources: Mapping[str, str] = MappingProxyType({}),
) -> str:
    """Which arms forgot less or more than each reference at the same learning, in words (a
    secondary reading, read without multiplicity adjustment, says so)."""
    if not by_pair:
        return (
            "Nothing to compare: the table compares every method with "
            f"{' and '.join(Arm.parse(r).display for r in REFERENCES)} at the same learning, "
            "so it needs one of them and one other method among the arms (add e.g. `lora` or "
            "`curlora` to `arms`)."
        )
    parts = []
    for ref in refs:
        sides = {arm: Side.of(by_pair, arm, ref, sources) for arm in arms if arm != ref}
        groups = {
            word: [
                Arm.parse(a).display
                + (" (secondary, unadjusted)" if side.source == "secondary" else "")
                for a, side in sides.items()
                if side.readable and side.verdict == verdict
            ]
            for verdict, word in WORDS.items()
        }
        groups["not comparable at matched learning"] = [
            Arm.parse(a).display for a, side in sides.items() if not side.readable
        ]
        said = [f"{word}: {', '.join(names)}" for word, names in groups.items() if names]
        parts.append(f"Against {Arm.parse(ref).display} — " + "; ".join(said) + ".")
    return " ".join(parts)


def _caption(
    plan: AnalysisPlan,
    readings: list[Reading],
    costs: BenchCosts | None,
    refs: list[str],
    registered: int,
    secondary: int = 0,
) -> str:
    """How the table was made, stated from its own inputs."""
    n = len(readings)  # the whole family: a pair with no common range stays in it, unrejected
    text = (
        "Each arm at its operating rate (chosen on validation, all its seeds), and against each "
        "reference at matched learning over the learning both reach (the seeds that ran both "
        "arms): the difference in perplexity ratio on held-out Wikipedia, with its interval at "
        "the level of its Holm step. A pair the registered plan names shows the plan's own "
        f"reading ({registered} here, marked)."
        + (
            f" A peer the plan registers as secondary, against CURLoRA or LoRA, is read alone "
            f"at {level_text(plan.confidence)}, outside any Holm family, as the plan says "
            f"({secondary} here, marked)."
            if secondary
            else ""
        )
        + " The others are exploratory, Holm-adjusted as a "
        f"family of their own ({n} comparison{'s' if n != 1 else ''}, α = {plan.familywise_alpha:g}). Each pair is "
        "read once and shown on both arms' rows, negated on the second. A row's verdict is about "
        "its own arm; *undecided* means Holm did not reject"
        + (
            f" (a secondary cell: its test at {level_text(plan.confidence)} did not)"
            if secondary
            else ""
        )
        + ", whatever the interval shows."
    )
    if refs:
        text += (
            f" Rows are ordered by their verdict against {Arm.parse(refs[0]).display}, then by "
            "the estimate: among undecided rows the order is not a ranking."
        )
    if costs is not None:
        text += (
            f' Train step and peak memory: `make bench`\'s group "{costs.title}" (fp32; the '
            f"machine's 2048² fp32 product ran at {costs.fp32_gflops:.0f} GFLOP/s)."
        )
    return text


def peer_markdown(peers: PeerTable, heading: str = "###") -> str:
    """The table's section of a findings page."""
    return "\n".join(
        [
            f"{heading} Which method forgets least for the same learning",
            "",
            peers.sentence,
            "",
            markdown_table(peers.table),
            "",
            peers.caption,
            "",
        ]
    )

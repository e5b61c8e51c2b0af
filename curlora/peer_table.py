"""Which method forgets least for the same learning: every arm of a study against CURLoRA and
against LoRA at matched plasticity, beside its trainable parameters and, where the benchmark
measured them, its train-step time and peak memory.

The comparisons are the plan's matched statistic (``curlora.matching``) on general-knowledge
forgetting (the perplexity ratio on held-out Wikipedia), read by the same bootstrap as the
registered claims. They are exploratory: the plan does not name them, so they form a Holm family
of their own (every comparison in the table), which the table's caption states.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from curlora.arms import Arm
from curlora.bootstrap import identity
from curlora.claim_text import plasticity_label, range_text, value_text
from curlora.claims import Reading, read_claims, study_cells
from curlora.domain_study import DomainStudy
from curlora.matching import Means
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
    "undecided": "no difference shown",
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
    verdict: str
    reason: str = ""  # why there is no estimate

    @classmethod
    def of(cls, by_pair: dict[tuple[str, str], Reading], arm: str, ref: str) -> Side | None:
        """``arm`` minus ``ref``: read directly, or as the negated ``ref`` minus ``arm``."""
        sign, r = (
            (1, by_pair.get((arm, ref))) if (arm, ref) in by_pair else (-1, by_pair.get((ref, arm)))
        )
        if r is None:
            return None
        if not r.readable:
            return cls(math.nan, math.nan, math.nan, "undecided", r.reason or "no estimate")
        lo, hi = sorted(sign * v for v in r.interval(adjusted=True))
        verdict = r.verdict if sign == 1 else _MIRROR[r.verdict]
        return cls(sign * r.estimate.value, lo, hi, verdict)

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
    return [a for a in arms if a != "head-only"]


def _operating(cells, arm: str) -> tuple[float, float, float]:
    """(rate, plasticity, log perplexity ratio) at the arm's operating rate, as observed."""
    means = Means(cells, identity(len(cells.seeds), len(cells.tokens)))
    k = int(means.operating_rate(arm)[0])
    lr = cells.rates[arm][k]
    return lr, float(means.x(arm, lr)[0]), float(means.outcome(OUTCOME, arm, lr)[0])


def _cell(side: Side | None) -> str:
    if side is None:
        return "—"
    if not side.readable:
        return f"not read: {side.reason}"
    return (
        f"{value_text(OUTCOME, side.value)} ({range_text(OUTCOME, side.lo, side.hi)}): "
        f"{WORDS[side.verdict]}"
    )


def forgets_least(
    study: Study | DomainStudy,
    plan: AnalysisPlan,
    costs: BenchCosts | None = None,
    replicates: int | None = None,
) -> PeerTable:
    """Every adapter arm of ``study`` at matched plasticity against CURLoRA and LoRA, ordered
    from the arm that forgets least against the first reference the study ran."""
    arms = _compared(study.arms)
    claims = peer_claims(arms)
    cells = study_cells(study, plan)
    family = replace(plan, claims=claims)
    readings = read_claims([study], family, replicates, [cells]) if claims else []
    by_pair = {(r.claim.arm, r.claim.against): r for r in readings}
    refs = [ref for ref in REFERENCES if ref in arms]
    label, scale = plasticity_label(cells)
    spec = study.runs[0].spec
    # Costs timed on another model or rank would mislead; the caption says why they are absent.
    other = costs is not None and not costs.fits(spec)
    costs = None if other else costs
    rows, order = [], []
    for arm in arms:
        lr, x, y = _operating(cells, arm)
        runs = study.runs_of(arm, lr)
        row = {
            "arm": Arm.parse(arm).display,
            "trainable": int(runs[0].parameters.get("adapter", 0)),
            "operating rate": f"{lr:g}",
            f"{label} at it": f"{x * scale:+.3g}",
            "perplexity change at it": value_text(OUTCOME, y),
        }
        for ref in refs:
            row[f"vs {Arm.parse(ref).display}, same learning (Holm interval)"] = (
                "—" if arm == ref else _cell(Side.of(by_pair, arm, ref))
            )
        if costs is not None:
            cost = costs.costs.get(arm)
            row["train step (ms)"] = f"{cost.step_ms:.0f}" if cost else "not benchmarked"
            row["peak memory (MiB)"] = f"{cost.peak_mib:.0f}" if cost else "not benchmarked"
        rows.append(row)
        first = Side.of(by_pair, arm, refs[0]) if refs and arm != refs[0] else None
        order.append(0.0 if first is None else first.value if first.readable else np.inf)
    table = pd.DataFrame([rows[k] for k in np.argsort(order, kind="stable")]).set_index("arm")
    caption = _caption(plan, readings, costs)
    if other:
        caption += (
            " No train-step costs: the benchmark timed another model or rank than these runs' "
            f"(`{spec.model}`, r{spec.rank})."
        )
    return PeerTable(table, _sentence(by_pair, arms, refs), caption, tuple(readings))


def _sentence(by_pair: dict[tuple[str, str], Reading], arms: list[str], refs: list[str]) -> str:
    """Which arms forgot less or more than each reference at the same learning, in words."""
    if not by_pair:
        return (
            "Nothing to compare: the table compares every method with "
            f"{' and '.join(Arm.parse(r).display for r in REFERENCES)} at the same learning, "
            "so it needs one of them and one other method among the arms (add e.g. `lora` or "
            "`curlora` to `arms`)."
        )
    parts = []
    for ref in refs:
        sides = {arm: Side.of(by_pair, arm, ref) for arm in arms if arm != ref}
        groups = {
            word: [Arm.parse(a).display for a, side in sides.items() if side.verdict == verdict]
            for verdict, word in WORDS.items()
        }
        unread = [Arm.parse(a).display for a, side in sides.items() if not side.readable]
        said = [f"{word}: {', '.join(names)}" for word, names in groups.items() if names]
        text = f"Against {Arm.parse(ref).display} — " + "; ".join(said)
        if unread:
            text += f" (of which not comparable at matched learning: {', '.join(unread)})"
        parts.append(text + ".")
    return " ".join(parts)


def _caption(plan: AnalysisPlan, readings: list[Reading], costs: BenchCosts | None) -> str:
    """How the table was made, stated from its own inputs."""
    n = sum(math.isfinite(r.p) for r in readings)
    text = (
        "Each arm at its operating rate (chosen on validation), and against each reference at "
        f"matched learning: the difference in perplexity ratio on held-out Wikipedia, with its "
        f"interval at its Holm step's level. Exploratory — the registered plan does not name "
        f"these comparisons — so they are Holm-adjusted as a family of their own ({n} "
        f"comparisons, α = {plan.familywise_alpha:g}; CURLoRA against LoRA is read once and "
        f"shown from both sides); a row's verdict says what its arm does."
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

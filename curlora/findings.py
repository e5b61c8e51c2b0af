"""Verdicts on the paper's claims and the sampling ablation, and the findings page, from the runs.

Every verdict names its replicates (seeds), gives a 95% interval, states the smallest effect the
design could detect, and is phrased as what the data exclude. Nothing here is written ahead of
the numbers: each sentence is assembled from them, with the thresholds stated where used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from curlora.arms import Arm
from curlora.cells import Cells, cells_of
from curlora.claim_text import (
    anchor,
    claim_sentence,
    claims_table,
    decision_box,
    range_text,
    robustness_table,
    value_text,
)
from curlora.claims import (
    Reading,
    at_every_level,
    frontier_shares,
    home_cells,
    rate_choices,
    read_claims,
    robustness,
    seed_t_interval,
)
from curlora.outcomes import OUTCOMES, STABILITY
from curlora.peer_table import BenchCosts, forgets_least, peer_markdown
from curlora.plan import AnalysisPlan, load_plan
from curlora.plan_text import PLAN_ANCHOR, plan_brief, plan_line
from curlora.readings import (
    difference_reading,
    markdown_table,
    ratio_reading,
    reading,
    verdict_label,
)
from curlora.stats import Interval
from curlora.study import Comparison, Study
from curlora.tables import operating_table, perplexity_noise

#: A perplexity ratio that every seed puts above this counts as "exploding" (paper: ×10,000).
EXPLODES = 2.0


def comparison_reading(c: Comparison) -> str:
    """'CURLoRA − LoRA in perplexity ratio at matched plasticity 2–6 points: …'."""
    if not c.levels:
        return f"{Arm.parse(c.a).display} against {Arm.parse(c.b).display} in {OUTCOMES[c.outcome].description}: not compared, as {c.reason}"
    what = "relative difference" if c.outcome == "ppl_ratio" else "difference"
    tasks = f" (tasks: {', '.join(c.tasks)})" if c.tasks else ""
    levels = ", ".join(
        f"{L * 100:.1f}: "
        + (
            f"{(math.exp(i.mean) - 1) * 100:+.1f}%"
            if c.outcome == "ppl_ratio"
            else f"{i.mean * (100 if c.outcome == 'forgetting' else 1):+.3g}"
        )
        for L, i in zip(c.levels, c.per_level, strict=True)
    )
    lo, hi = c.levels[0] * 100, c.levels[-1] * 100
    # The levels span what both frontiers reach while shown to learn; when that is (almost) one
    # plasticity, say so rather than print a range like "1.1–1.1" and three equal levels.
    where = (
        f"{lo:.2f}–{hi:.2f} points over head-only, about the only plasticity both are shown to "
        "learn at"
        if hi - lo < 0.1
        else f"{lo:.1f}–{hi:.1f} points over head-only (per level {levels})"
    )
    return (
        f"{Arm.parse(c.a).display} against {Arm.parse(c.b).display}, {what} in {OUTCOMES[c.outcome].description}{tasks} at matched "
        f"validation plasticity {where}: " + difference_reading(c.interval, c.outcome)
    )


def design_summary(study: Study) -> str:
    """'3 seeds, 6 task orders, CURLoRA at 5 rates, LoRA at 4 rates' (what a study ran)."""
    n, orders = len(study.seeds), len(study.orders)
    rates = {a: len(study.rates(a)) for a in study.arms if a != "head-only"}
    return f"{n} seed{'s' * (n != 1)}, {orders} task order{'s' * (orders != 1)}, " + ", ".join(
        f"{Arm.parse(a).display} at {k} rate{'s' * (k != 1)}" for a, k in rates.items()
    )


def design_line(study: Study) -> str:
    """What the verdicts below rest on: seeds, task orders, rates per arm, how rates were chosen."""
    design = design_summary(study)
    return (
        f"*Design behind these verdicts.* {design}; each method's operating rate chosen on "
        f"{_selection_split(study)}. Intervals are 95% Student-t over seeds (df = n − 1); "
        "perplexity ratios are averaged on the log scale."
    )


def _selection_split(study: Study) -> str:
    return "validation" if study.has_validation else "the reported split (no validation split)"


def _at_highest_rate(study: Study, arm: str) -> str:
    """'; at its highest rate 1e-2, by …' where that is not the operating rate, else ''."""
    top = max(study.rates(arm))
    if top == study.operating_rate(arm):
        return ""
    return (
        f"; at its highest rate {top:g}, by {ratio_reading(study.interval(arm, 'ppl_ratio', top))}"
    )


def lora_explodes_verdict(study: Study) -> list[str]:
    """The paper's claim that LoRA's perplexity explodes, read against doubling."""
    if "lora" not in study.arms:
        return []
    i = study.interval("lora", "ppl_ratio")
    shift = math.log(EXPLODES)
    label = verdict_label(
        Interval(i.mean - shift, i.lo - shift, i.hi - shift, i.n, i.se),
        "t over seeds: it stays below double",
        "t over seeds: it at least doubles, though the paper's ×10,000 is not tested at this scale",
        "t over seeds: neither doubling nor staying below double is shown",
    )
    return [
        f"*LoRA forgets: perplexity explodes* (paper: ×10,000 on Mistral-7B). {label}: at its "
        f"operating rate {study.operating_rate('lora'):g}, perplexity changes by "
        f"{ratio_reading(i)}{_at_highest_rate(study, 'lora')}."
    ]


def curlora_keeps_perplexity_verdict(study: Study) -> list[str]:
    """The paper's claim that CURLoRA keeps perplexity fixed, read against ±1%."""
    if "curlora" not in study.arms:
        return []
    i = study.interval("curlora", "ppl_ratio")
    band = math.log(1.01)
    if i.n > 1 and i.lo > -band and i.hi < band:
        label = "t over seeds: it holds within ±1%"
    elif i.n > 1 and (i.lo > band or i.hi < -band):
        label = "t over seeds: contradicted, the change exceeds 1%"
    else:
        label = "t over seeds: not shown within ±1%"
    return [
        f"*CURLoRA keeps perplexity fixed.* {label}: at its operating rate "
        f"{study.operating_rate('curlora'):g}, perplexity changes by {ratio_reading(i)}"
        f"{_at_highest_rate(study, 'curlora')}. Only head-only's frozen backbone keeps it fixed by "
        "construction."
    ]


def retention_verdict(study: Study) -> list[str]:
    """The paper's claim that CURLoRA retains earlier tasks and LoRA forgets them, arm by arm."""
    lines = []
    for arm in (a for a in study.arms if a != "head-only"):
        learned = study.learned_tasks(arm)
        forgettable = study.earlier(learned)
        # Only a task that could be forgotten is worth naming: the last one never is.
        missed = [t for t in study.earlier(list(study.learned(arm))) if t not in learned]
        text = f"{Arm.parse(arm).display} (rate {study.operating_rate(arm):g}): "
        if not forgettable:
            text += "no earlier task is shown learned, so its forgetting cannot be measured"
        else:
            f = study.interval(arm, "forgetting")
            text += (
                f"forgetting of {', '.join(forgettable)} {reading(f, 100, ' pts', 1, 'forgetting')}"
            )
        if missed:
            text += f"; left out, not shown learned above majority: {', '.join(missed)}"
        lines.append(text)
    if not lines:
        return []
    return [
        "*CURLoRA retains earlier tasks; LoRA forgets them.* Each method on its own, at its "
        "operating rate — these intervals are not a comparison between methods (different "
        "rates, different learning; see the equal-learning verdict). Forgetting is accuracy "
        "right after a task minus after the last task (eval split), measured only on tasks "
        f"shown learned on {_selection_split(study)}: " + "; ".join(lines) + "."
    ]


def adapter_learns_verdict(study: Study) -> list[str]:
    """A control the paper lacks: does the adapter, beyond the new head alone, learn?"""
    if not study.head_only:
        return []
    gains = []
    for a in (a for a in study.arms if a != "head-only"):
        g = study.gain_over_head(a)
        tag = "shown" if g.shown_positive else "not shown"
        gains.append(f"{Arm.parse(a).display} ({tag}) {reading(g, 100, ' pts', 1, 'the gain')}")
    if not gains:
        return []
    return [
        "*The adapter, not just the new head, does the learning* (a control the paper "
        "lacks). Own-task accuracy gain over head-only at each operating rate, eval split: "
        + "; ".join(gains)
        + "."
    ]


def equal_learning_verdicts(study: Study) -> list[str]:
    """CURLoRA against each peer method at equal learning (needs head-only to measure learning)."""
    if "curlora" not in study.arms or not study.head_only:
        return []
    return [equal_learning_verdict(study, p) for p in study.arms if Arm.parse(p).role == "peer"]


#: The verdicts on the paper's claims (and the controls it lacks), in the order a page shows them.
VERDICTS: tuple[Callable[[Study], list[str]], ...] = (
    lora_explodes_verdict,
    curlora_keeps_perplexity_verdict,
    retention_verdict,
    adapter_learns_verdict,
    equal_learning_verdicts,
)


def paper_verdicts(study: Study) -> list[str]:
    """One plain-language verdict per paper claim (and per control the paper lacks), from the runs."""
    return [v for claim in VERDICTS for v in claim(study)]


def verdicts(study: Study) -> list[str]:
    """The design line, then every verdict of ``paper_verdicts``."""
    return [design_line(study), *paper_verdicts(study)]


def ablation_verdicts(study: Study) -> list[str]:
    """The sampling ablation's verdict as a list (empty when its arms are missing)."""
    return [text] if (text := ablation_verdict(study)) else []


def order_verdicts(study: Study, read: Callable[[Study], list[str]] = paper_verdicts) -> str:
    """The verdicts ``read`` gives on each task order alone (Markdown): does one hinge on the order?"""
    if len(study.orders) < 2:
        return (
            f"One task order was run ({' → '.join(study.orders[0])}), so whether a verdict "
            'depends on the order is not tested here; run with `orders="paper+reverse"`.'
        )
    parts = []
    for order in study.orders:
        alone = study.of_order(order)
        parts.append(
            f"**{' → '.join(order)} alone**\n\n" + "\n".join(f"- {v}" for v in read(alone))
        )
    return "\n\n".join(parts)


def equal_learning_verdict(study: Study, peer: str) -> str:
    """CURLoRA against one LoRA arm at matched plasticity on their frontiers (and at one rate)."""
    comparisons = {o: study.compare("curlora", peer, o) for o in STABILITY}
    holds = (
        "CURLoRA lower (t over seeds: holds)",
        "CURLoRA higher (t over seeds: contradicted)",
        "no difference shown",
    )
    pair = study.matched_pair("curlora", peer) if not comparisons["ppl_ratio"].levels else None
    at_pair = (
        study.compare_at_rate("curlora", peer, "ppl_ratio", pair[0], pair[1]) if pair else None
    )
    labels = []
    for o, c in comparisons.items():
        if c.levels:
            labels.append(f"{OUTCOMES[o].description}: {verdict_label(c.interval, *holds)}")
        elif o == "ppl_ratio" and at_pair is not None:
            labels.append(
                f"{OUTCOMES[o].description}: no frontier levels ({c.reason}); at the nearest matched pair of "
                f"rates, {verdict_label(at_pair, *holds)}"
            )
        else:
            labels.append(f"{OUTCOMES[o].description}: undecided ({c.reason})")
    lines = [comparison_reading(c) for c in comparisons.values()]
    if pair is not None:
        lines.append(pair_reading("curlora", peer, pair, at_pair))
    rate = study.contrast_rate("curlora", peer)
    if rate is not None:
        same = study.compare_at_rate("curlora", peer, "ppl_ratio", rate)
        lines.append(
            f"for contrast, at one shared rate ({rate:g}, the highest both ran), CURLoRA "
            f"against {Arm.parse(peer).display} in perplexity ratio: {difference_reading(same, 'ppl_ratio')}"
        )
    sizes = {a: study.runs_of(a)[0].parameters.get("adapter") for a in ("curlora", peer)}
    counted = (
        f" ({sizes['curlora']:,} against {sizes[peer]:,} adapter parameters)"
        if all(sizes.values())
        else ""
    )
    return (
        f"*CURLoRA forgets less than {Arm.parse(peer).display} for the same learning*{counted}. "
        + "; ".join(labels)
        + ". Each method's frontier across learning rates, read at plasticity levels both "
        "reach and both are shown to learn at: " + "; ".join(lines) + "."
    )


def pair_reading(a: str, b: str, pair: tuple[float, float, Interval], ppl: Interval) -> str:
    """'the nearest matched pair of rates …: a at 1e-3 against b at 3e-4 …' in perplexity ratio."""
    rate_a, rate_b, gap = pair
    return (
        f"the nearest matched pair of rates, each shown to learn on validation: {Arm.parse(a).display} at "
        f"{rate_a:g} against {Arm.parse(b).display} at {rate_b:g}, whose validation gains differ by "
        f"{reading(gap, 100, ' pts', 1, 'the difference')}; there {Arm.parse(a).display} against {Arm.parse(b).display} "
        f"in perplexity ratio: {difference_reading(ppl, 'ppl_ratio')}"
    )


def ablation_verdict(study: Study, reference: str = "curlora") -> str | None:
    """Does the inversion matter? Eq. 4 sampling against each other sampling mode (and the SVD
    peer) at matched plasticity, and at one rate for contrast."""
    others = study.ablations(reference)
    if reference not in study.arms or not others or not study.head_only:
        return None
    lines, tags = [], []
    for other in others:
        c = study.compare(reference, other, "ppl_ratio")
        rate = study.contrast_rate(reference, other)
        same = (
            study.compare_at_rate(reference, other, "ppl_ratio", rate) if rate is not None else None
        )
        pair = study.matched_pair(reference, other) if not c.levels else None
        at_pair = (
            study.compare_at_rate(reference, other, "ppl_ratio", pair[0], pair[1]) if pair else None
        )
        text = comparison_reading(c)
        if same is not None:
            text += f" (at one rate, {rate:g}: {difference_reading(same, 'ppl_ratio')})"
        if pair is not None:
            text += f"; {pair_reading(reference, other, pair, at_pair)}"
        lines.append(text)
        tags.append(f"against {Arm.parse(other).display}: {_ablation_answer(c, same, at_pair)}")
    return (
        "*Inverted sampling regularises: it forgets less.* **"
        + "; ".join(tags)
        + ".** Perplexity ratio of eq. 4 sampling against each alternative (relative difference), "
        "at equal learning: " + "; ".join(lines) + "."
    )


def _ablation_answer(
    matched: Comparison, same: Interval | None, at_pair: Interval | None = None
) -> str:
    """What the readings together say (no cause is claimed beyond them)."""
    at_rate = same is not None and same.n > 1 and (same.hi < 0 or same.lo > 0)
    if (not matched.levels or matched.interval.n < 2) and at_pair is not None and at_pair.n > 1:
        return verdict_label(
            at_pair,
            "less perplexity change at the nearest matched pair of rates",
            "more perplexity change at the nearest matched pair of rates",
            "no difference shown at the nearest matched pair of rates",
        )
    if not matched.levels or matched.interval.n < 2:
        return "not compared at equal learning" + (" (a difference at one rate)" if at_rate else "")
    if matched.interval.hi < 0:
        return "less perplexity change at equal learning"
    if matched.interval.lo > 0:
        return "more perplexity change at equal learning"
    if at_rate:
        return "a difference at one rate, none shown at equal learning"
    return "no difference shown, at equal learning or at one rate"


#: Where the evidence profile's findings page is published, as the README links it.
PUBLISHED_PAGE = "report/evidence/FINDINGS.md"


@dataclass(frozen=True)
class Findings:
    """A profile's findings page, and the block the README shows of it."""

    page: str
    readme: str
    #: The registered claims as read (another protocol's page compares its verdicts with them).
    readings: tuple[Reading, ...] = ()


def summary_markdown(
    main: Study,
    ablation: Study | None = None,
    plan: AnalysisPlan | None = None,
    replicates: int | None = None,
) -> str:
    """The findings page of ``findings`` (Markdown)."""
    return findings(main, ablation, plan, replicates).page


def findings(
    main: Study,
    ablation: Study | None = None,
    plan: AnalysisPlan | None = None,
    replicates: int | None = None,
    costs: BenchCosts | None = None,
) -> Findings:
    """The findings of a profile, all generated from the runs: the decision box, the plan's
    claims with Holm-adjusted intervals and their robustness, which method forgets least for
    the same learning (with ``costs``, the benchmark's), each claim at every plasticity level,
    each method at its operating rate, and — folded — the exploratory readings the plan does
    not name; and the README's block (the decision box, linking into the page)."""
    plan = load_plan() if plan is None else plan
    studies = [main] + ([ablation] if ablation is not None else [])
    cells = [cells_of(s, plan) for s in studies]
    readings = read_claims(studies, plan, replicates, cells)
    robust = robustness(studies, plan, min(replicates or 500, 500))
    before = {
        c.key: seed_t_interval(c, home_cells(c, cells), plan)
        for c in plan.claims
        if all(a in home_cells(c, cells).rates for a in c.arms())
    }
    trainable = {
        arm: study.runs_of(arm)[0].parameters.get("adapter", 0)
        for study in studies
        for arm in study.arms
    }
    peers = forgets_least(main, plan, costs, replicates, readings)
    parts = [
        decision_box(readings, robust, trainable=trainable),
        "",
        plan_line(plan, cells),
        "",
        "## The claims",
        "",
        "Each claim's estimate with its 95% interval (hierarchical bootstrap over seeds and "
        "perplexity windows, the operating rate and the frontier matching re-run in every "
        f"replicate), its Holm-adjusted p-value across the {len(plan.claims)} claims and the "
        "interval at its Holm step's level; beside them, the t-interval over seeds the analysis "
        "before the plan used (it leaves out the x axis's and the windows' noise).",
        "",
        markdown_table(claims_table(readings, before)),
        "",
        "## Robustness",
        "",
        "Each verdict re-read with one seed, or one task order, left out (a verdict that "
        "changes is fragile):",
        "",
        markdown_table(robustness_table(readings, robust)),
        "",
        peer_markdown(peers, "##"),
        "## Each claim in full",
        "",
        *(claim_section(r, home_cells(r.claim, cells), plan, replicates) for r in readings),
        "## Each method at its operating rate",
        "",
        "Operating rates chosen on validation; evaluation split; 95% intervals over seeds:",
        "",
        markdown_table(operating_table(main)),
        "",
        "<details><summary>Exploratory readings (not in the plan: the analysis before it, with "
        "its per-arm significance gates)</summary>",
        "",
        *(f"- {v}" for v in verdicts(main)),
    ]
    ablation_text = ablation_verdict(ablation) if ablation is not None else None
    if ablation_text:
        parts.append(f"- {ablation_text}")
    if len(main.orders) > 1:
        parts += ["", "The same readings from each task order alone:", "", order_verdicts(main)]
    if ablation_text and len(ablation.orders) > 1:
        parts += [
            "",
            "The sampling ablation from each task order alone:",
            "",
            order_verdicts(ablation, ablation_verdicts),
        ]
    parts += ["", "</details>", "", perplexity_noise(main)]
    readme = [
        decision_box(readings, robust, PUBLISHED_PAGE, trainable),
        "",
        plan_brief(plan, cells, f"{PUBLISHED_PAGE}#{PLAN_ANCHOR}"),
        "",
        "**Which method forgets least for the same learning** (pairs the plan names as "
        f"registered, the rest exploratory): {peers.sentence}",
        "",
        f"Read from {len({r.spec.key() for st in studies for r in st.runs})} "
        "runs: "
        f"{design_summary(main)}"
        + (f"; the sampling ablation {design_summary(ablation)}" if ablation else "")
        + f". Every claim in full, its robustness and its reading at every plasticity level: "
        f"[the findings page]({PUBLISHED_PAGE}).",
    ]
    return Findings("\n".join(parts) + "\n", "\n".join(readme) + "\n", tuple(readings))


#: Below this share of replicates for its most chosen rate, a claim's choice of rate is split.
SPLIT_CHOICE = 0.9


def _rate_choice_text(
    r: Reading, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> str:
    """Which rates the bootstrap's resampled seeds chose for a claim read at an operating rate,
    and what a split choice does to its interval."""
    shares = rate_choices(r.claim, cells, plan, replicates)
    chosen = ", ".join(f"{lr:g} in {share:.0%}" for lr, share in shares.items() if share > 0)
    if (none := 1 - sum(shares.values())) > 0.005:
        chosen += f", none (a broken run at every rate) in {none:.0%}"
    text = (
        f"Validation's choice of {Arm.parse(r.claim.arm).display}'s operating rate, re-made in "
        f"every replicate that resamples the seeds: {chosen}."
    )
    if max(shares.values()) < SPLIT_CHOICE:
        text += (
            " The choice splits, so the replicates gather around the outcome at each chosen "
            "rate, and the interval (estimate ± t × bootstrap SE, the plan's rule) spans the gap "
            "between them: its ends need not be values any rate produced."
        )
    return text


#: A rate on its arm's rising frontier in a share of replicates between 1 − this and this is
#: unsettled: near-tied learning puts it on the frontier in some replicates and not in others.
SETTLED = 0.95


def _frontier_text(
    r: Reading, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> str:
    """For a matched claim: the rates whose place on their frontier the bootstrap's resampled
    seeds change, and what that does to the interval (empty if every place is settled)."""
    shares = frontier_shares(r.claim, cells, plan, replicates)
    unsettled = [
        f"{Arm.parse(arm).display} at {lr:g} in {share:.0%}"
        for arm, by_rate in shares.items()
        for lr, share in by_rate.items()
        if 1 - SETTLED < share < SETTLED
    ]
    if not unsettled:
        return ""
    return (
        "Rates whose place on their arm's rising frontier changes across the replicates that "
        f"resample the seeds (the share of replicates with it on the frontier): "
        f"{'; '.join(unsettled)}. Such a rate learns about as much as a lower one, so whether "
        "it extends the frontier depends on the seeds drawn. Where its outcome is far from "
        "its neighbours' (a rate that breaks), the replicates spread, and the interval widens "
        "with them."
    )


def claim_section(
    r: Reading, cells: Cells, plan: AnalysisPlan, replicates: int | None = None
) -> str:
    """A claim's full reading: the sentence, and for a matched claim every plasticity level."""
    lines = [f'<a id="{anchor(r)}"></a>', "", f"### {r.claim.statement}", "", claim_sentence(r)]
    if r.readable and r.estimate.undefined > 0:
        lines.append(
            f"In {r.estimate.undefined:.0%} of the bootstrap replicates the statistic was "
            "undefined (for a matched claim: no common plasticity range; at an operating rate: "
            "no rate could be chosen); the interval rests on the others."
        )
    if r.readable and r.claim.kind != "matched":
        lines += ["", _rate_choice_text(r, cells, plan, replicates)]
    if r.readable and r.claim.kind == "matched":
        if text := _frontier_text(r, cells, plan, replicates):
            lines += ["", text]
    levels = at_every_level(r.claim, cells, plan, replicates)
    if levels:
        x, scale = cells.plasticity_label
        rows = [
            {
                x: f"{level * scale:.3g}",
                "difference": value_text(r.claim.outcome, e.value),
                "95% interval": range_text(r.claim.outcome, *e.interval()),
            }
            for level, e in levels
        ]
        lines += [
            "",
            f"{Arm.parse(r.claim.arm).display} minus {Arm.parse(r.claim.against).display} at "
            "every plasticity level both mean frontiers reach, from barely learning to the "
            "most both reach (pointwise 95% intervals, exploratory: not in the Holm family):",
            "",
            markdown_table(pd.DataFrame(rows).set_index(x)),
        ]
    return "\n".join(lines) + "\n"

"""Verdicts on the paper's claims, and our numbers beside its Tables 1–2, generated from the runs.

Every verdict names its replicates (seeds), gives a 95% interval, states the smallest effect the
design could detect, and is phrased as what the data exclude. Nothing here is written ahead of
the numbers: each sentence is assembled from them, with the thresholds stated where used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources

import numpy as np
import pandas as pd

from curlora.stats import Interval, bootstrap_se, t_interval
from curlora.study import OUTCOMES, Comparison, Study

#: A perplexity ratio that every seed puts above this counts as "exploding" (paper: ×10,000).
EXPLODES = 2.0
#: Display names of arms.
NAMES = {
    "curlora": "CURLoRA",
    "lora": "LoRA",
    "svd": "the SVD peer",
    "head-only": "head-only",
}


def name(arm: str) -> str:
    """A readable name of an arm ('lora-r1' → 'LoRA r1', 'curlora-norm' → 'CURLoRA (norm sampling)')."""
    if arm in NAMES:
        return NAMES[arm]
    method, *rest = arm.split("-")
    extra = [
        f"r{p[1:]}" if p.startswith("r") and p[1:].isdigit() else f"({p} sampling)" for p in rest
    ]
    return " ".join([NAMES.get(method, method), *extra])


def paper_results() -> pd.DataFrame:
    """The paper's Tables 1–2 (single runs), as shipped with the package."""
    with (resources.files("curlora") / "resources" / "paper_results.csv").open() as f:
        return pd.read_csv(f)


def _phrase(
    values: tuple[float, float, float], i: Interval, mde: float, unit: str, digits: int, what: str
) -> str:
    """An interval's reading as what the data exclude; ``values`` = (mean, lo, hi) as shown."""
    mean, lo, hi = values
    f = f"{{:+.{digits}f}}"
    span = f"{f.format(mean)}{unit} [{f.format(lo)}, {f.format(hi)}], n = {i.n} seeds"
    detect = f"smallest detectable ≈ {mde:.{digits}f}{unit}"
    if lo > 0:
        return f"{span}: {what} is positive, at least {lo:.{digits}f}{unit} ({detect})"
    if hi < 0:
        return f"{span}: {what} is negative, at least {-hi:.{digits}f}{unit} in size ({detect})"
    bound = max(abs(lo), abs(hi))
    return f"{span}: none shown; one larger than {bound:.{digits}f}{unit} is excluded ({detect})"


def reading(
    i: Interval, scale: float = 1.0, unit: str = "", digits: int = 3, what: str = "the difference"
) -> str:
    """What an interval says, as the data's exclusions: 'excludes an effect larger than …'."""
    if i.n == 0:
        return "no runs"
    if i.n < 2:
        return f"{i.mean * scale:+.{digits}f}{unit} from one seed (no interval)"
    return _phrase(
        (i.mean * scale, i.lo * scale, i.hi * scale), i, i.detectable() * scale, unit, digits, what
    )


def _factor(ratio: float) -> str:
    """A perplexity ratio as a factor: '×1.82', '×16.4', '×2,420'."""
    return f"×{ratio:,.0f}" if ratio >= 100 else f"×{ratio:.3g}"


#: Ratios reaching this factor read as factors (×16.4), smaller ones as percent changes (+1.13%).
FACTOR_FROM = 2.0


def ratio_reading(log_ratio: Interval, what: str = "the change") -> str:
    """An interval on the log scale of perplexity (a ratio, or a ratio of ratios): in percent
    for small changes, as factors once it reaches ×2 (a +3,120,503% change reads as ×31,206)."""
    i = log_ratio
    if i.n < 2:
        return (
            "no interval"
            if i.n == 0
            else f"{(math.exp(i.mean) - 1) * 100:+.2f}% from one seed (no interval)"
        )
    if max(abs(i.lo), abs(i.hi)) < math.log(FACTOR_FROM):
        pct = tuple((math.exp(v) - 1) * 100 for v in (i.mean, i.lo, i.hi))
        return _phrase(pct, i, (math.exp(i.detectable()) - 1) * 100, "%", 2, what)
    mean, lo, hi = (math.exp(v) for v in (i.mean, i.lo, i.hi))
    span = f"{_factor(mean)} [{_factor(lo)}, {_factor(hi)}], n = {i.n} seeds"
    detect = f"smallest detectable factor ≈ {_factor(math.exp(i.detectable()))}"
    if lo > 1:
        return f"{span}: {what} is an increase, at least {_factor(lo)} ({detect})"
    if hi < 1:
        return f"{span}: {what} is a decrease, to at most {_factor(hi)} ({detect})"
    return (
        f"{span}: none shown; a factor above {_factor(hi)} or below {_factor(lo)} is excluded "
        f"({detect})"
    )


def difference_reading(i: Interval, outcome: str) -> str:
    """A difference between arms: perplexity as a ratio of ratios (in %), forgetting in points."""
    if outcome == "ppl_ratio":
        return ratio_reading(i, "the difference")
    if outcome == "forgetting":
        return reading(i, 100, " pts", 2)
    return reading(i, 1, "", 4)


def comparison_reading(c: Comparison) -> str:
    """'CURLoRA − LoRA in perplexity ratio at matched plasticity 2–6 points: …'."""
    if not c.levels:
        return (
            f"{name(c.a)} against {name(c.b)} in {OUTCOMES[c.outcome]}: not compared, as {c.reason}"
        )
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
        f"{name(c.a)} against {name(c.b)}, {what} in {OUTCOMES[c.outcome]}{tasks} at matched "
        f"validation plasticity {where}: " + difference_reading(c.interval, c.outcome)
    )


def _label(i: Interval, lower_is: str, higher_is: str, neither: str) -> str:
    """A verdict label from an interval: below zero, above zero, or neither shown."""
    if i.n < 2:
        return "**Undecided** (fewer than two seeds)"
    if i.hi < 0:
        return lower_is
    if i.lo > 0:
        return higher_is
    return neither


def contrast_rate(study: Study, a: str, b: str) -> float | None:
    """The one rate a same-rate contrast uses: the highest rate both arms ran at (stated)."""
    shared = sorted(set(study.rates(a)) & set(study.rates(b)))
    return shared[-1] if shared else None


def verdicts(study: Study) -> list[str]:
    """One plain-language verdict per paper claim (and per control the paper lacks), from the runs."""
    arms = study.arms
    out = []
    n, orders = len(study.seeds), len(study.orders)
    rates = {a: len(study.rates(a)) for a in arms if a != "head-only"}
    design = f"{n} seed{'s' * (n != 1)}, {orders} task order{'s' * (orders != 1)}, " + ", ".join(
        f"{name(a)} at {k} rate{'s' * (k != 1)}" for a, k in rates.items()
    )
    at = {a: study.operating_rate(a) for a in arms}
    chosen = "validation" if study.has_validation else "the reported split (no validation split)"
    out.append(
        f"*Design behind these verdicts.* {design}; each method's operating rate chosen on "
        f"{chosen}. Intervals are 95% Student-t over seeds (df = n − 1); perplexity ratios are "
        "averaged on the log scale."
    )
    if "lora" in arms:
        i = study.interval("lora", "ppl_ratio")
        top = max(study.rates("lora"))
        worst = study.interval("lora", "ppl_ratio", top)
        label = _label(
            Interval(
                i.mean - math.log(EXPLODES),
                i.lo - math.log(EXPLODES),
                i.hi - math.log(EXPLODES),
                i.n,
                i.se,
            ),
            "**Not shown here**: perplexity is shown to stay below double",
            "**Perplexity at least doubles here**, though the paper's ×10,000 is not tested at this scale",
            "**Undecided**: neither doubling nor staying below double is shown",
        )
        highest = (
            f"; at its highest rate {top:g}, by {ratio_reading(worst)}" if top != at["lora"] else ""
        )
        out.append(
            f"*LoRA forgets: perplexity explodes* (paper: ×10,000 on Mistral-7B). {label}: at its "
            f"operating rate {at['lora']:g}, perplexity changes by {ratio_reading(i)}{highest}."
        )
    if "curlora" in arms:
        i = study.interval("curlora", "ppl_ratio")
        band = math.log(1.01)
        if i.n > 1 and i.lo > -band and i.hi < band:
            label = "**Holds here** within ±1%"
        elif i.n > 1 and (i.lo > band or i.hi < -band):
            label = "**Contradicted here**: the change is shown to exceed 1%"
        else:
            label = "**Not shown within ±1%**"
        top = max(study.rates("curlora"))
        highest = (
            f"; at its highest rate {top:g}, by {ratio_reading(study.interval('curlora', 'ppl_ratio', top))}"
            if top != at["curlora"]
            else ""
        )
        out.append(
            f"*CURLoRA keeps perplexity fixed.* {label}: at its operating rate {at['curlora']:g}, "
            f"perplexity changes by {ratio_reading(i)}{highest}. Only head-only's frozen backbone "
            "keeps it fixed by construction."
        )
    lines = []
    for arm in (a for a in arms if a != "head-only"):
        learned = study.learned_tasks(arm)
        forgettable = study.earlier(learned)
        missed = [t for t in study.learned(arm) if t not in learned]
        text = f"{name(arm)} (rate {at[arm]:g}): "
        if not forgettable:
            text += "no earlier task is shown learned, so its forgetting cannot be measured"
        else:
            f = study.interval(arm, "forgetting")
            text += (
                f"forgetting of {', '.join(forgettable)} {reading(f, 100, ' pts', 1, 'forgetting')}"
            )
        if missed:
            text += f"; not shown above majority: {', '.join(missed)}"
        lines.append(text)
    if lines:
        out.append(
            "*CURLoRA retains earlier tasks; LoRA forgets them.* Each method on its own, at its "
            "operating rate — these intervals are not a comparison between methods (different "
            "rates, different learning; see the equal-learning verdict). Forgetting is accuracy "
            "right after a task minus after the last task (eval split), measured only on tasks "
            f"shown learned on {chosen}: " + "; ".join(lines) + "."
        )
    if study.head_only:
        gains = []
        for a in (a for a in arms if a != "head-only"):
            g = study.gain_over_head(a)
            tag = "shown" if g.shown_positive else "not shown"
            gains.append(f"{name(a)} ({tag}) {reading(g, 100, ' pts', 1, 'the gain')}")
        if gains:
            out.append(
                "*The adapter, not just the new head, does the learning* (a control the paper "
                "lacks). Own-task accuracy gain over head-only at each operating rate, eval split: "
                + "; ".join(gains)
                + "."
            )
    if "curlora" in arms and study.head_only:
        out += [
            equal_learning_verdict(study, peer) for peer in arms if peer.split("-")[0] == "lora"
        ]
    return out


def paper_verdicts(study: Study) -> list[str]:
    """The verdicts on the paper's claims, without the design line."""
    return verdicts(study)[1:]


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
    comparisons = {o: study.compare("curlora", peer, o) for o in OUTCOMES}
    holds = (
        "CURLoRA lower (**holds**)",
        "CURLoRA higher (**contradicted**)",
        "no difference shown",
    )
    pair = study.matched_pair("curlora", peer) if not comparisons["ppl_ratio"].levels else None
    at_pair = (
        study.compare_at_rate("curlora", peer, "ppl_ratio", pair[0], pair[1]) if pair else None
    )
    labels = []
    for o, c in comparisons.items():
        if c.levels:
            labels.append(f"{OUTCOMES[o]}: {_label(c.interval, *holds)}")
        elif o == "ppl_ratio" and at_pair is not None:
            labels.append(
                f"{OUTCOMES[o]}: no frontier levels ({c.reason}); at the nearest matched pair of "
                f"rates, {_label(at_pair, *holds)}"
            )
        else:
            labels.append(f"{OUTCOMES[o]}: undecided ({c.reason})")
    lines = [comparison_reading(c) for c in comparisons.values()]
    if pair is not None:
        lines.append(pair_reading("curlora", peer, pair, at_pair))
    rate = contrast_rate(study, "curlora", peer)
    if rate is not None:
        same = study.compare_at_rate("curlora", peer, "ppl_ratio", rate)
        lines.append(
            f"for contrast, at one shared rate ({rate:g}, the highest both ran), CURLoRA "
            f"against {name(peer)} in perplexity ratio: {difference_reading(same, 'ppl_ratio')}"
        )
    sizes = {a: study.runs_of(a)[0].parameters.get("adapter") for a in ("curlora", peer)}
    counted = (
        f" ({sizes['curlora']:,} against {sizes[peer]:,} adapter parameters)"
        if all(sizes.values())
        else ""
    )
    return (
        f"*CURLoRA forgets less than {name(peer)} for the same learning*{counted}. "
        + "; ".join(labels)
        + ". Each method's frontier across learning rates, read at plasticity levels both "
        "reach and both are shown to learn at: " + "; ".join(lines) + "."
    )


def pair_reading(a: str, b: str, pair: tuple[float, float, Interval], ppl: Interval) -> str:
    """'the nearest matched pair of rates …: a at 1e-3 against b at 3e-4 …' in perplexity ratio."""
    rate_a, rate_b, gap = pair
    return (
        f"the nearest matched pair of rates, each shown to learn on validation: {name(a)} at "
        f"{rate_a:g} against {name(b)} at {rate_b:g}, whose validation gains differ by "
        f"{reading(gap, 100, ' pts', 1, 'the difference')}; there {name(a)} against {name(b)} "
        f"in perplexity ratio: {difference_reading(ppl, 'ppl_ratio')}"
    )


def ablation_verdict(study: Study, reference: str = "curlora") -> str | None:
    """Does the inversion matter? Eq. 4 sampling against each other sampling mode (and the SVD
    peer) at matched plasticity, and at one rate for contrast."""
    others = [
        a
        for a in study.arms
        if a not in (reference, "head-only") and a.split("-")[0] in ("curlora", "svd")
    ]
    if reference not in study.arms or not others or not study.head_only:
        return None
    lines, tags = [], []
    for other in others:
        c = study.compare(reference, other, "ppl_ratio")
        rate = contrast_rate(study, reference, other)
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
        tags.append(f"against {name(other)}: {_ablation_answer(c, same, at_pair)}")
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
        return _label(
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


def design_text(design, runs: list) -> str:
    """What was run, in words, with what one run cost (from the runs' own timings)."""
    base = design.base
    seconds = [sum(r.timings.values()) for r in runs if r.timings and r.spec.method != "head-only"]
    cost = (
        f" One adapter run took {sum(seconds) / len(seconds):.0f} s on average here "
        f"({sum(seconds) / 60:.1f} CPU-process minutes for all {len(seconds)})."
        if seconds
        else ""
    )
    rates = "; ".join(
        f"{a}: {', '.join(f'{lr:g}' for lr in design.rates(a))}"
        for a in design.arms
        if a != "head-only"
    )
    return (
        f"**Design.** Model `{base.model}`, rank {base.rank} on the attention Q/K/V preset; tasks "
        f"{' → '.join(f'`{t}`' for t in (runs[0].task_names if runs else base.tasks))} ({design.orders} order"
        f"{'s' if design.orders != 'paper' else ''}); per task {base.train_size} training, "
        f"{base.val_size} validation and {base.eval_size} evaluation examples; "
        f"{base.epochs} epoch(s) of batch {base.batch_size}; head learning rate "
        f"{base.head_lr if base.head_lr is not None else 'as the adapter'}; "
        f"{'bf16 autocast' if base.autocast else base.dtype}; perplexity on "
        f"{base.ppl_windows or 'all'} windows of {base.ppl_max_length} tokens of `{base.corpus}`. "
        f"Arms and learning rates: {rates}. Seeds: {', '.join(map(str, design.seeds))}. "
        f"{len(runs)} runs in all.{cost}"
    )


def summary_table(runs: list) -> pd.DataFrame:
    """One row per configuration (runs that differ only by seed), mean ± CI half-width."""
    from curlora.experiment.summary import summarise

    table = summarise(runs)
    keep = ["arm", "lr", "order", "n_seeds"] + [
        f"{k}_{s}"
        for k in ("ACC", "BWT", "Forgetting", "ppl_ratio", "output_shift")
        for s in ("mean", "ci")
    ]
    return table[keep].round(4)


def ablation_table(
    study: Study, reference: str = "curlora", outcome: str = "ppl_ratio"
) -> pd.DataFrame:
    """Reference arm against each other sampling arm: at matched plasticity and at one shared rate
    (perplexity as the relative difference of ratios, in %)."""
    rows = []
    show = (lambda v: (math.exp(v) - 1) * 100) if outcome == "ppl_ratio" else (lambda v: v * 100)
    for other in (
        a
        for a in study.arms
        if a not in (reference, "head-only") and a.split("-")[0] in ("curlora", "svd")
    ):
        matched = study.compare(reference, other, outcome).interval
        rate = contrast_rate(study, reference, other)
        same = (
            study.compare_at_rate(reference, other, outcome, rate)
            if rate is not None
            else t_interval([])
        )
        rows.append(
            {
                "label": f"{name(reference)} vs {name(other)}",
                **{f"matched_{k}": show(getattr(matched, k)) for k in ("mean", "lo", "hi")},
                **{f"same_{k}": show(getattr(same, k)) for k in ("mean", "lo", "hi")},
                "rate": rate if rate is not None else float("nan"),
                "n": max(matched.n, same.n),
                "unit": "relative difference in perplexity ratio (%)"
                if outcome == "ppl_ratio"
                else f"{OUTCOMES[outcome]} (×100)",
            }
        )
    return pd.DataFrame(rows)


def perplexity_noise(study: Study) -> str:
    """How precisely a run's perplexity ratio is measured: the ratio read on two disjoint halves
    of the sampled windows, across the adapter runs that learned without breaking (ratio < 2)."""
    gaps = []
    for r in study.runs:
        nll = r.perplexity["nll"]
        windows = len(nll.iloc[0]) if len(nll) else 0
        if r.spec.method == "head-only" or windows < 4 or r.perplexity["ratio"].iloc[-1] > 2:
            continue
        half = windows // 2
        gaps.append(abs(r.perplexity_ratio(slice(0, half)) - r.perplexity_ratio(slice(half, None))))
    if not gaps:
        return "No adapter run has enough perplexity windows to measure the ratio's noise."
    gaps = np.asarray(gaps)
    return (
        f"**Perplexity as a measurement.** Read on two disjoint halves of its "
        f"{study.runs[0].spec.ppl_windows} windows ({study.runs[0].spec.ppl_max_length} tokens "
        f"each), a run's perplexity ratio differs by a median of {np.median(gaps) * 100:.2f} "
        f"percentage points (95th percentile {np.percentile(gaps, 95) * 100:.2f}; {len(gaps)} "
        "adapter runs with ratios below ×2). The full sample averages both halves, so its noise "
        "is about half of that; effects smaller than the 95th percentile are not read off one run."
    )


def acc_with_uncertainty(runs: list) -> tuple[str, str]:
    """ACC over seeds (t-interval) and the typical per-run SE from a bootstrap over the run's
    evaluation examples (first task order)."""
    order = runs[0].spec.tasks
    runs = [r for r in runs if r.spec.tasks == order]
    last = runs[0].task_names[-1]

    def acc(arrays: list[np.ndarray]) -> float:
        return float(np.mean([a.mean() for a in arrays]))

    per_run = [[r.correctness(t, last).astype(float) for t in r.task_names] for r in runs]
    i = t_interval([acc(a) for a in per_run])
    se = float(np.median([bootstrap_se(a, acc, seed=k) for k, a in enumerate(per_run)]))
    text = f"{i.mean:.3f}" if math.isnan(i.se) else f"{i.mean:.3f} [{i.lo:.3f}, {i.hi:.3f}]"
    return text, f"{se:.3f}"


def _percent(log_ratio: Interval) -> str:
    """A log-ratio interval as '+1.23% [+0.50, +2.00]', or as factors once it reaches ×2."""
    values = (log_ratio.mean, log_ratio.lo, log_ratio.hi)
    if math.isnan(log_ratio.se):
        values = values[:1]
    if max(abs(v) for v in values) >= math.log(FACTOR_FROM):
        shown = [_factor(math.exp(v)) for v in values]
    else:
        shown = [f"{(math.exp(v) - 1) * 100:+.2f}%" for v in values]
    return shown[0] if len(shown) == 1 else f"{shown[0]} [{shown[1]}, {shown[2]}]"


def operating_table(study: Study) -> pd.DataFrame:
    """Each arm at its operating rate (chosen on validation): gain over head-only, forgetting of
    learned tasks, perplexity change and output shift, as 95% intervals over seeds (eval split)."""
    rows = []
    for arm in study.arms:
        runs = study.runs_of(arm)
        gain = study.gain_over_head(arm) if arm != "head-only" else None
        forgetting = study.interval(arm, "forgetting")
        ppl = study.interval(arm, "ppl_ratio")
        shift = study.interval(arm, "output_shift")
        rows.append(
            {
                "arm": name(arm),
                "trainable": runs[0].summary()["adapter_params"],
                "rate": study.operating_rate(arm),
                "ACC (over seeds)": acc_with_uncertainty(runs)[0],
                "per-run SE of ACC (bootstrap)": acc_with_uncertainty(runs)[1],
                "gain over head-only (pts)": "—" if gain is None else gain.text(1, 100),
                "forgetting, learned tasks (pts)": forgetting.text(1, 100) if forgetting.n else "—",
                "perplexity change": _percent(ppl),
                "output shift": shift.text(4) if arm != "head-only" else "0",
                "seeds": len({r.spec.seed for r in runs}),
            }
        )
    return pd.DataFrame(rows).set_index("arm")


def comparison_table(study: Study) -> pd.DataFrame:
    """Our rows in the paper's layout, at each arm's operating rate: mean ± 95% CI over seeds."""
    rows: dict[str, dict[str, str]] = {}
    for arm in study.arms:
        runs = study.runs_of(arm)
        order = runs[0].spec.tasks
        runs = [r for r in runs if r.spec.tasks == order]  # the table is one task order
        tasks = runs[0].task_names
        col = f"{name(arm)} (lr {study.operating_rate(arm):g}, n={len(runs)})"

        def fmt(values, digits=3):
            i = t_interval(values)
            return f"{i.mean:.{digits}f}" + ("" if math.isnan(i.se) else f" ± {i.half:.{digits}f}")

        rows.setdefault("initial ppl", {})[col] = fmt(
            [r.perplexity["perplexity"].iloc[0] for r in runs], 2
        )
        for i, after in enumerate(tasks):
            for task in tasks[: i + 1]:
                rows.setdefault(f"{task} after {after}", {})[col] = fmt(
                    [r.accuracy_matrix().loc[after, task] for r in runs]
                )
        rows.setdefault("final ppl", {})[col] = fmt(
            [r.perplexity["perplexity"].iloc[-1] for r in runs], 2
        )
        rows.setdefault("final ppl / initial", {})[col] = fmt(
            [r.perplexity["ratio"].iloc[-1] for r in runs], 4
        )
    majority = study.runs[0].majority()
    table = pd.DataFrame(rows).T
    table["majority class"] = [
        f"{majority[k.split(' after ')[0]]:.3f}" if " after " in k else "" for k in table.index
    ]
    return table


def _markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index as the first column)."""
    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in table.iterrows():
        cells = [
            f"{v:,}" if isinstance(v, int) else f"{v:g}" if isinstance(v, float) else str(v)
            for v in row
        ]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def summary_markdown(main: Study, ablation: Study | None = None) -> str:
    """The findings of a profile in one page: each method at its operating rate, every verdict,
    the sampling ablation, and how precise perplexity is — all generated from the runs."""
    parts = [
        "Each method at its operating rate (chosen on validation), evaluation split, 95% "
        "intervals over seeds:",
        "",
        _markdown_table(operating_table(main)),
        "",
        *(f"- {v}" for v in verdicts(main)),
    ]
    ablation_text = ablation_verdict(ablation) if ablation is not None else None
    if ablation_text:
        parts.append(f"- {ablation_text}")
    if len(main.orders) > 1:
        parts += ["", "The same verdicts from each task order alone:", "", order_verdicts(main)]
    if ablation_text and len(ablation.orders) > 1:
        parts += [
            "",
            "The sampling ablation from each task order alone:",
            "",
            order_verdicts(ablation, ablation_verdicts),
        ]
    parts += ["", perplexity_noise(main)]
    return "\n".join(parts) + "\n"

"""Verdicts on the paper's claims, and our numbers beside its Tables 1–2, generated from the runs.

Every verdict names its replicates (seeds), gives a 95% interval, states the smallest effect the
design could detect, and is phrased as what the data exclude. Nothing here is written ahead of
the numbers: each sentence is assembled from them, with the thresholds stated where used.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd

from curlora.stats import Interval, hierarchical_bootstrap, t_interval
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


def reading(
    i: Interval, scale: float = 1.0, unit: str = "", digits: int = 3, what: str = "the difference"
) -> str:
    """What an interval says, as the data's exclusions: 'excludes an effect larger than …'."""
    if i.n == 0:
        return "no runs"
    if i.n < 2:
        return f"{i.mean * scale:+.{digits}f}{unit} from one seed (no interval)"
    mde = i.detectable() * scale
    span = f"{i.text(digits, scale, unit)}, n = {i.n} seeds"
    if i.lo > 0:
        return f"{span}: {what} is positive, at least {i.lo * scale:.{digits}f}{unit}"
    if i.hi < 0:
        return f"{span}: {what} is negative, at least {-i.hi * scale:.{digits}f}{unit} in size"
    bound = max(abs(i.lo), abs(i.hi)) * scale
    return (
        f"{span}: no effect shown; one larger than {bound:.{digits}f}{unit} is excluded "
        f"(smallest detectable ≈ {mde:.{digits}f}{unit})"
    )


def ratio_reading(i: Interval) -> str:
    """A perplexity-ratio interval in percent change."""
    shifted = Interval(i.mean - 1, i.lo - 1, i.hi - 1, i.n, i.se, i.confidence)
    return reading(shifted, 100, "%", 2, "the change")


#: How a difference in each outcome is shown: scale, unit, digits.
UNITS = {"ppl_ratio": (100, " pp", 2), "forgetting": (100, " pts", 2), "output_shift": (1, "", 4)}


def difference_reading(i: Interval, outcome: str) -> str:
    """A difference between arms in ``outcome`` (perplexity ratios in percentage points)."""
    scale, unit, digits = UNITS[outcome]
    return reading(i, scale, unit, digits)


def comparison_reading(c: Comparison) -> str:
    """'CURLoRA − LoRA in perplexity ratio at matched plasticity 2–6 points: …'."""
    if not c.levels:
        return (
            f"{name(c.a)} and {name(c.b)}: their frontiers reach no common plasticity, so they "
            "cannot be compared at equal learning with these rates"
        )
    return (
        f"{name(c.a)} − {name(c.b)} in {OUTCOMES[c.outcome]} at matched validation plasticity "
        f"{c.levels[0] * 100:.1f}–{c.levels[-1] * 100:.1f} points over head-only: "
        + difference_reading(c.interval, c.outcome)
    )


def verdicts(study: Study) -> list[str]:
    """One plain-language verdict per paper claim (and per control the paper lacks), from the runs."""
    arms = study.arms
    out = []
    n = len(study.seeds)
    orders = len(study.orders)
    design = f"{n} seed{'s' * (n != 1)}, {orders} task order{'s' * (orders != 1)}"
    at = {a: study.operating_rate(a) for a in arms}

    if "lora" in arms:
        i = study.interval("lora", "ppl_ratio")
        top = max(study.rates("lora"))
        worst = study.interval("lora", "ppl_ratio", top)
        verdict = (
            "**Holds here**"
            if i.n > 1 and i.lo > EXPLODES
            else "**Not shown here**"
            if i.n > 1 and i.hi < EXPLODES
            else "**Undecided**"
        )
        highest = (
            f"; at its highest rate {top:g}, by {ratio_reading(worst)}" if top != at["lora"] else ""
        )
        out.append(
            f"*LoRA forgets: perplexity explodes* (paper: ×10,000 on Mistral-7B). {verdict} "
            f"(explosion = ratio above ×{EXPLODES:g}): at its operating rate {at['lora']:g}, "
            f"perplexity changes by {ratio_reading(i)}{highest} ({design})."
        )
    if "curlora" in arms:
        i = study.interval("curlora", "ppl_ratio")
        fixed = i.n > 1 and i.lo > 1 - 0.01 and i.hi < 1 + 0.01
        verdict = "**Holds here** within ±1%" if fixed else "**Not shown within ±1%**"
        out.append(
            f"*CURLoRA keeps perplexity fixed.* {verdict}: at its operating rate "
            f"{at['curlora']:g}, perplexity changes by {ratio_reading(i)}. Only the frozen "
            "backbone of head-only keeps it fixed by construction."
        )
    learned_lines = []
    for arm in (a for a in arms if a != "head-only"):
        learned = study.learned_tasks(arm)
        missed = [t for t in study.learned(arm) if t not in learned]
        f = study.interval(arm, "forgetting")
        text = f"{name(arm)} (rate {at[arm]:g}): "
        if not learned[:-1] and len(learned) <= 1:
            text += (
                "no earlier task learned above its majority level, so forgetting cannot be measured"
            )
        else:
            text += (
                f"forgetting of learned earlier tasks {reading(f, 100, ' pts', 1, 'forgetting')}"
            )
        if missed:
            text += f"; not learned above majority: {', '.join(missed)}"
        learned_lines.append(text)
    if learned_lines:
        out.append(
            "*CURLoRA retains earlier tasks; LoRA forgets them.* Forgetting (accuracy right after "
            "a task minus after the last task, eval split) is assessed only on tasks whose own "
            "accuracy is above their majority level: " + "; ".join(learned_lines) + "."
        )
    gains = [
        f"{name(a)} {reading(study.gain_over_head(a), 100, ' pts', 1, 'the gain')}"
        for a in arms
        if a != "head-only" and study.head_only
    ]
    if gains:
        out.append(
            "*The adapter, not just the new head, does the learning* (a control the paper lacks). "
            "Own-task accuracy gain over head-only at each operating rate (eval split): "
            + "; ".join(gains)
            + "."
        )
    if {"curlora", "lora"} <= set(arms) and study.head_only:
        comparisons = [study.compare("curlora", "lora", o) for o in OUTCOMES]
        lines = [comparison_reading(c) for c in comparisons if c.levels] or [
            comparison_reading(comparisons[0])
        ]
        shared = sorted(set(study.rates("curlora")) & set(study.rates("lora")))
        if shared:
            lr = shared[len(shared) // 2]
            same = study.compare_at_rate("curlora", "lora", "ppl_ratio", lr)
            lines.append(
                f"for contrast, at one shared rate {lr:g}, CURLoRA − LoRA in perplexity ratio: "
                + difference_reading(same, "ppl_ratio")
            )
        ppl = comparisons[0]
        verdict = (
            "**Undecided here**: the frontiers do not overlap"
            if not ppl.levels
            else "**Holds here** for perplexity"
            if ppl.interval.n > 1 and ppl.interval.hi < 0
            else "**Contradicted here**: CURLoRA moves perplexity more than LoRA for the same learning"
            if ppl.interval.n > 1 and ppl.interval.lo > 0
            else "**Not shown**: no difference in perplexity at equal learning"
        )
        out.append(
            f"*CURLoRA forgets less than LoRA for the same learning.* {verdict}. Each method's "
            "frontier across learning rates, read at plasticity levels both reach: "
            + "; ".join(lines)
            + "."
        )
    return out


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
        shared = sorted(set(study.rates(reference)) & set(study.rates(other)))
        same = study.compare_at_rate(reference, other, "ppl_ratio", shared[-1]) if shared else None
        text = comparison_reading(c)
        if same is not None:
            text += f" (at one rate, {shared[-1]:g}: {difference_reading(same, 'ppl_ratio')})"
        lines.append(text)
        tags.append(f"against {name(other)}: {_ablation_answer(c, same)}")
    return (
        "*Inverted sampling regularises: it forgets less.* "
        + "**"
        + "; ".join(tags)
        + ".** Perplexity ratio of eq. 4 sampling minus each alternative (pp: percentage points "
        "of perplexity change), at equal learning: " + "; ".join(lines) + "."
    )


def _ablation_answer(matched: Comparison, same: Interval | None) -> str:
    """Whether eq. 4 forgets less for the same learning, or only at the same rate."""
    at_rate = same is not None and same.n > 1 and (same.hi < 0 or same.lo > 0)
    if not matched.levels or matched.interval.n < 2:
        return "not comparable at equal learning with these rates"
    if matched.interval.hi < 0:
        return "less perplexity change at equal learning (the inversion itself helps)"
    if matched.interval.lo > 0:
        return "more perplexity change at equal learning"
    if at_rate:
        return "no difference at equal learning; the difference at one rate is the step size"
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
    """Reference arm minus each other sampling arm: at matched plasticity and at one shared rate."""
    rows = []
    scale = 100 if outcome in ("ppl_ratio", "forgetting") else 1
    for other in (
        a
        for a in study.arms
        if a not in (reference, "head-only") and a.split("-")[0] in ("curlora", "svd")
    ):
        matched = study.compare(reference, other, outcome).interval
        shared = sorted(set(study.rates(reference)) & set(study.rates(other)))
        same = (
            study.compare_at_rate(reference, other, outcome, shared[-1])
            if shared
            else t_interval([])
        )
        rows.append(
            {
                "label": f"{name(reference)} − {name(other)}",
                **{f"matched_{k}": getattr(matched, k) * scale for k in ("mean", "lo", "hi")},
                **{f"same_{k}": getattr(same, k) * scale for k in ("mean", "lo", "hi")},
                "rate": shared[-1] if shared else float("nan"),
                "n": max(matched.n, same.n),
                "unit": f"{OUTCOMES[outcome]}{' (×100)' if scale == 100 else ''}",
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


def acc_bootstrap(runs: list) -> str:
    """ACC with a hierarchical bootstrap interval: seeds resampled, then evaluation examples
    within each — both sources of uncertainty in one interval (first task order)."""
    order = runs[0].spec.tasks
    runs = [r for r in runs if r.spec.tasks == order]
    last = runs[0].task_names[-1]
    groups = [[r.correctness(t, last).astype(float) for t in r.task_names] for r in runs]
    lo, hi = hierarchical_bootstrap(
        groups, lambda g: float(np.mean([np.mean([a.mean() for a in s]) for s in g])), n_boot=1000
    )
    mean = float(np.mean([np.mean([a.mean() for a in s]) for s in groups]))
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


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
                "ACC (95% bootstrap)": acc_bootstrap(runs),
                "gain over head-only (pts)": "—" if gain is None else gain.text(1, 100),
                "forgetting, learned tasks (pts)": forgetting.text(1, 100) if forgetting.n else "—",
                "perplexity change (%)": Interval(
                    ppl.mean - 1, ppl.lo - 1, ppl.hi - 1, ppl.n, ppl.se
                ).text(2, 100),
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

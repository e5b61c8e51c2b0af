"""The tables of a study, generated from its runs: what was run, each method at its operating
rate, our numbers beside the paper's Tables 1–2, the ablation's contrasts, perplexity's noise."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd

from curlora.arms import Arm
from curlora.outcomes import OUTCOMES
from curlora.readings import geometric_mean_ci, interval_text, mean_pm, percent
from curlora.stats import Interval, bootstrap_se, t_interval
from curlora.study import Study


def paper_results() -> pd.DataFrame:
    """The paper's Tables 1–2 (single runs), as shipped with the package."""
    with (resources.files("curlora") / "resources" / "paper_results.csv").open() as f:
        return pd.read_csv(f)


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
        f"Arms and learning rates: {rates}. Seeds: {', '.join(map(str, design.seeds))}"
        + "".join(
            f" ({Arm.parse(a).display}: {', '.join(map(str, s))})"
            for a, s in design.arm_seeds.items()
        )
        + f". {len(runs)} runs in all.{cost}"
    )


def summary_table(runs: list, base_rank: int | None = None) -> pd.DataFrame:
    """One row per configuration (runs that differ only by seed): each number's mean and 95%
    half-width over seeds; the perplexity ratio's geometric mean and its interval's factor."""
    from curlora.experiment.summary import RATIOS, summarise

    table = summarise(runs, base_rank=base_rank)
    keep = ["arm", "lr", "order", "n_seeds"]
    for k in ("ACC", "BWT", "Forgetting", "ppl_ratio", "output_shift"):
        keep += [f"{k}_gmean", f"{k}_factor"] if k in RATIOS else [f"{k}_mean", f"{k}_ci"]
    return table[keep].round(4)


def ablation_table(
    study: Study, reference: str = "curlora", outcome: str = "ppl_ratio"
) -> pd.DataFrame:
    """Reference arm against each other sampling arm: at matched plasticity and at one shared rate
    (perplexity as the relative difference of ratios, in %); ``unmatched`` says why a pair has no
    matched reading."""
    rows = []
    show = (lambda v: (math.exp(v) - 1) * 100) if outcome == "ppl_ratio" else (lambda v: v * 100)
    for other in study.ablations(reference):
        comparison = study.compare(reference, other, outcome)
        matched = comparison.interval
        rate = study.contrast_rate(reference, other)
        same = (
            study.compare_at_rate(reference, other, outcome, rate)
            if rate is not None
            else t_interval([])
        )
        rows.append(
            {
                "label": f"{Arm.parse(reference).display} vs {Arm.parse(other).display}",
                **{f"matched_{k}": show(getattr(matched, k)) for k in ("mean", "lo", "hi")},
                **{f"same_{k}": show(getattr(same, k)) for k in ("mean", "lo", "hi")},
                "rate": rate if rate is not None else float("nan"),
                # Why no matched reading, where there is none ("… not shown to learn at any rate").
                "unmatched": comparison.reason,
                "n": max(matched.n, same.n),
                "unit": "relative difference in perplexity ratio (%)"
                if outcome == "ppl_ratio"
                else f"{OUTCOMES[outcome].description} (×100)",
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


def acc_with_uncertainty(study: Study, arm: str) -> tuple[Interval, float]:
    """ACC at the arm's operating rate over seeds (each seed's mean over every task order it
    ran), and the typical per-run SE from a bootstrap over each run's evaluation examples."""

    def acc(arrays: list[np.ndarray]) -> float:
        return float(np.mean([a.mean() for a in arrays]))

    runs = study.runs_of(arm)
    per_run = [
        [r.correctness(t, r.task_names[-1]).astype(float) for t in r.task_names] for r in runs
    ]
    interval = study.over_seeds(arm, None, lambda r: r.summary()["ACC"])
    se = float(np.median([bootstrap_se(a, acc, seed=k) for k, a in enumerate(per_run)]))
    return interval, se


#: The forgetting column's task set, named on the table: the same for every arm.
FORGETTING_COLUMN = "forgetting of earlier tasks (pts; every task but each order's last)"


def operating_table(study: Study) -> pd.DataFrame:
    """Each arm at its operating rate (chosen on validation): ACC over every task order,
    gain over head-only, forgetting of every earlier task, perplexity change and output shift,
    as 95% intervals over seeds (eval split)."""
    rows = []
    for arm in study.arms:
        runs = study.runs_of(arm)
        gain = study.gain_over_head(arm) if arm != "head-only" else None
        forgetting = study.over_seeds(arm, None, lambda r: OUTCOMES["forgetting"].of_run(r, None))
        ppl = study.interval(arm, "ppl_ratio")
        shift = study.interval(arm, "output_shift")
        acc, se = acc_with_uncertainty(study, arm)
        rows.append(
            {
                "arm": Arm.parse(arm).display,
                "trainable": runs[0].summary()["adapter_params"],
                # Head-only trains no adapter: its runs' adapter rate moves nothing.
                "rate": "—" if arm == "head-only" else f"{study.operating_rate(arm):g}",
                f"ACC (over seeds, {len(study.orders)} task orders)": interval_text(
                    acc, signed=False
                ),
                "per-run SE of ACC (bootstrap)": f"{se:.3f}",
                "gain over head-only (pts)": "—" if gain is None else interval_text(gain, 1, 100),
                FORGETTING_COLUMN: interval_text(forgetting, 1, 100) if forgetting.n else "—",
                "perplexity change": percent(ppl),
                "output shift": interval_text(shift, 4) if arm != "head-only" else "0",
                "seeds": len({r.spec.seed for r in runs}),
            }
        )
    return pd.DataFrame(rows).set_index("arm")


def comparison_table(study: Study) -> pd.DataFrame:
    """Our rows in the paper's layout, at each arm's operating rate: accuracies as mean ± 95% CI
    over seeds, perplexities as geometric mean [95% CI] (ratios average on the log scale)."""
    rows: dict[str, dict[str, str]] = {}
    for arm in study.arms:
        runs = study.runs_of(arm)
        order = runs[0].spec.tasks
        runs = [r for r in runs if r.spec.tasks == order]  # the table is one task order
        tasks = runs[0].task_names
        col = f"{Arm.parse(arm).display} (lr {study.operating_rate(arm):g}, n={len(runs)})"

        def fmt(values, digits=3):
            return mean_pm(t_interval(values), digits)

        rows.setdefault("initial ppl", {})[col] = geometric_mean_ci(
            [r.perplexity["perplexity"].iloc[0] for r in runs], 4
        )
        for i, after in enumerate(tasks):
            for task in tasks[: i + 1]:
                rows.setdefault(f"{task} after {after}", {})[col] = fmt(
                    [r.accuracy_matrix().loc[after, task] for r in runs]
                )
        rows.setdefault("final ppl", {})[col] = geometric_mean_ci(
            [r.perplexity["perplexity"].iloc[-1] for r in runs], 4
        )
        rows.setdefault("final ppl / initial", {})[col] = geometric_mean_ci(
            [r.perplexity["ratio"].iloc[-1] for r in runs], 4
        )
    majority = study.runs[0].majority()
    table = pd.DataFrame(rows).T
    table["majority class"] = [
        f"{majority[k.split(' after ')[0]]:.3f}" if " after " in k else "" for k in table.index
    ]
    return table

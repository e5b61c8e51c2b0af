"""Notebooks 04 and 05's figures: accuracy along the sequence, perplexity, frontiers, contrasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from curlora.outcomes import OUTCOMES, STABILITY
from curlora.plots.style import arm_color, figure, pooled
from curlora.stats import mean_ci, t_interval
from curlora.study import Study


def _operating_runs(study: Study, arms: list[str] | None = None) -> dict[str, list]:
    """Each arm's runs at its operating rate, in the study's first task order."""
    order = study.orders[0]
    return {
        arm: [r for r in study.runs_of(arm) if r.spec.tasks == order]
        for arm in (arms or study.arms)
    }


def accuracy_heatmaps(study: Study, arms: list[str] | None = None) -> Figure:
    """Mean accuracy matrix R[i][j] per arm at its operating rate (eval split, first task order)."""
    runs = _operating_runs(study, arms)
    fig, axes = figure(len(runs), 1, width=4.2, height=3.8)
    for ax, (arm, rs) in zip(axes[0], runs.items(), strict=True):
        mean = sum(r.accuracy_matrix() for r in rs) / len(rs)
        sns.heatmap(mean, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar=False, ax=ax)
        ax.set(
            title=f"{arm} (lr {study.operating_rate(arm):g}, n={len(rs)})",
            xlabel="evaluated task",
            ylabel="after training",
        )
    majority = study.runs[0].majority()
    fig.suptitle(
        "Majority-class (chance) levels: " + ", ".join(f"{t} {m:.2f}" for t, m in majority.items()),
        fontsize=9,
    )
    return fig


def _band(ax, group: pd.DataFrame, value: str, label: str, color: str, log: bool = False) -> None:
    """Mean ± 95% CI of ``value`` per stage over seeds, as a line with a shaded band; with
    ``log``, the geometric mean and its interval (for ratios)."""
    values = np.log(group[value]) if log else group[value]
    per_seed = group.assign(_v=values).groupby(["stage", "seed"])["_v"].mean().reset_index()
    summary = per_seed.groupby("stage")["_v"].apply(lambda v: mean_ci(list(v)))
    x = summary.index.to_numpy()
    mean = np.array([m for m, _ in summary])
    half = np.nan_to_num(np.array([h for _, h in summary]))  # one seed: no band
    low, high = mean - half, mean + half
    if log:
        mean, low, high = np.exp(mean), np.exp(low), np.exp(high)
    ax.plot(x, mean, "o-", label=label, color=color)
    ax.fill_between(x, low, high, color=color, alpha=0.15)


def task_accuracy_curves(study: Study, arms: list[str] | None = None) -> Figure:
    """Accuracy of each task along the sequence at each arm's operating rate: mean ± 95% CI
    over seeds, majority level dashed."""
    runs = _operating_runs(study, arms)
    tasks = next(iter(runs.values()))[0].task_names
    acc = pd.concat(
        [
            r.accuracy[r.accuracy["split"] == "eval"].assign(arm=arm, seed=r.spec.seed)
            for arm, rs in runs.items()
            for r in rs
        ]
    )
    fig, axes = figure(len(tasks), 1, width=4.2, sharey=True)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = acc[acc["task"] == task]
        for arm, group in sub.groupby("arm", sort=False):
            _band(ax, group, "accuracy", arm, arm_color(arm))
        ax.axhline(
            sub["majority"].mean(), ls="--", color="k", lw=1, label="majority class (chance)"
        )
        ax.set(
            title=task,
            xlabel="after training task #",
            xticks=range(1, len(tasks) + 1),
            ylim=(0, 1.02),
        )
    axes[0, 0].set_ylabel("accuracy (mean ± 95% CI)")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"Each arm at its operating rate; {pooled(study)} (first task order)", fontsize=9)
    return fig


def perplexity_trajectory(study: Study, arms: list[str] | None = None) -> Figure:
    """Perplexity of the original LM head after each task, relative to the start (geometric mean
    ± 95% CI, log scale), at each arm's operating rate."""
    runs = _operating_runs(study, arms)
    ppl = pd.concat(
        [r.perplexity.assign(arm=arm, seed=r.spec.seed) for arm, rs in runs.items() for r in rs]
    )
    fig, axes = figure(1, 1, width=6)
    ax = axes[0, 0]
    for arm, group in ppl.groupby("arm", sort=False):
        # Ratios average on the log scale, as the findings do: an arithmetic band around a
        # ratio that explodes in one seed reaches below zero.
        _band(ax, group, "ratio", arm, arm_color(arm), log=True)
    ax.axhline(1, color="k", lw=0.8)
    ax.set(
        yscale="log",
        xlabel="after training task # (0 = before)",
        ylabel="perplexity / initial (geometric mean)",
        title=f"Language-model forgetting ({pooled(study)})",
        xticks=sorted(ppl["stage"].unique()),
    )
    ax.legend()
    return fig


def frontiers(
    study: Study, arms: list[str] | None = None, outcomes: tuple[str, ...] = STABILITY
) -> Figure:
    """Stability against learning across learning rates: per arm, each outcome against validation
    plasticity (gain over head-only), mean ± 95% CI over seeds at each rate."""
    arms = [a for a in (arms or study.arms) if a != "head-only"]
    fig, axes = figure(len(outcomes), 1, width=4.6, height=4.0)
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        for arm in arms:
            _frontier(ax, study, arm, outcome)
        ax.axvline(0, color="k", lw=0.6)
        if OUTCOMES[outcome].scale == "ratio":
            ax.axhline(1, color="k", lw=0.6)
            ax.set_yscale("log")
        ax.set(
            xlabel="validation gain over head-only (points)",
            ylabel=OUTCOMES[outcome].axis_label,
        )
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Each point one learning rate (lowest and highest labelled); {pooled(study)}; "
        "x = 0 is the head alone (chance is below it)",
        fontsize=9,
    )
    return fig


def _frontier(ax, study: Study, arm: str, outcome: str) -> None:
    """One arm's frontier on ``ax``: a point per rate, its lowest and highest rates labelled."""
    tasks = study.earlier(study.learned_tasks(arm)) if outcome == "forgetting" else None
    # Perplexity is averaged on the log scale and drawn back as a ratio.
    show = OUTCOMES[outcome].shown
    xs, ys, xe, lows, highs = [], [], [], [], []
    for lr in study.rates(arm):
        p = t_interval(list(study.per_seed(arm, lr, study.plasticity).values()))
        value = study.per_seed(arm, lr, lambda r, o=outcome, t=tasks: study.outcome(r, o, t))
        m = t_interval(list(value.values()))
        half = np.nan_to_num(m.half)
        xs.append(p.mean * 100)
        xe.append(np.nan_to_num(p.half) * 100)
        ys.append(show(m.mean))
        lows.append(show(m.mean) - show(m.mean - half))
        highs.append(show(m.mean + half) - show(m.mean))
    color = arm_color(arm)
    ax.errorbar(
        xs,
        ys,
        xerr=xe,
        yerr=[lows, highs],
        fmt="o-",
        color=color,
        label=arm,
        capsize=2,
        lw=1.5,
        ms=4,
    )
    rates = study.rates(arm)
    # Only the lowest and highest rates are labelled, so labels never pile up.
    for i, va in ((0, "top"), (len(rates) - 1, "bottom")):
        ax.annotate(
            f"{rates[i]:g}",
            (xs[i], ys[i]),
            fontsize=7,
            color=color,
            xytext=(4, -4 if va == "top" else 4),
            textcoords="offset points",
            va=va,
        )


def matched_vs_same_rate(rows: pd.DataFrame) -> Figure:
    """Differences (reference arm − other) with 95% CIs, at matched plasticity and at one rate."""
    fig, axes = figure(1, 1, width=6.5, height=0.6 * len(rows) + 1.6)
    ax = axes[0, 0]
    y = np.arange(len(rows))
    for offset, prefix, color, label in (
        (-0.12, "matched", "C0", "at matched plasticity"),
        (0.12, "same", "C7", "at one learning rate"),
    ):
        mean, lo, hi = rows[f"{prefix}_mean"], rows[f"{prefix}_lo"], rows[f"{prefix}_hi"]
        ax.errorbar(
            mean,
            y + offset,
            xerr=[mean - lo, hi - mean],
            fmt="o",
            color=color,
            capsize=3,
            label=label,
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set(yticks=y, yticklabels=rows["label"], xlabel=rows["unit"].iloc[0] if len(rows) else "")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Difference (95% CI over {int(rows['n'].max()) if len(rows) else 0} seeds)")
    return fig

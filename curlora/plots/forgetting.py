"""Notebooks 04 and 05's figures: accuracy along the sequence, perplexity, frontiers, contrasts."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from curlora.outcomes import OUTCOMES, STABILITY
from curlora.plots.lint import bounded
from curlora.plots.style import arm_color, figure, order_label, pooled, set_caption, wrapped
from curlora.stats import Interval, logit_t_interval, t_interval
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
    set_caption(
        fig,
        f"Evaluation split, {order_label(study.orders[0])}, mean over seeds. Majority-class "
        "(chance) levels: " + ", ".join(f"{t} {m:.2f}" for t, m in majority.items()),
    )
    return fig


def _band(ax, group: pd.DataFrame, value: str, label: str, color: str, scale: str) -> None:
    """Mean and 95% t-band of ``value`` per stage over seeds, as a line with a shaded band, on the
    scale it is read on: ``"log"`` for ratios (geometric mean), ``"logit"`` for a proportion
    (log-odds, so the band stays in [0, 1])."""
    per_seed = group.groupby(["stage", "seed"])[value].mean().reset_index()
    if scale == "log":
        summary = per_seed.groupby("stage")[value].apply(
            lambda v: _exp(t_interval(list(np.log(v))))
        )
    else:
        summary = per_seed.groupby("stage")[value].apply(lambda v: logit_t_interval(list(v)))
    x = summary.index.to_numpy()
    mean = np.array([i.mean for i in summary])
    # One seed: no band, only the line.
    low = np.array([i.lo if i.n > 1 else i.mean for i in summary])
    high = np.array([i.hi if i.n > 1 else i.mean for i in summary])
    # Markers are measurements; a dashed line says the stages it crosses were not measured.
    skips = len(x) > 1 and bool((np.diff(x) > 1).any())
    ax.plot(x, mean, "o--" if skips else "o-", label=label, color=color)
    ax.fill_between(x, low, high, color=color, alpha=0.15)


def _exp(i: Interval) -> Interval:
    """An interval of logs drawn back as ratios."""
    return replace(i, mean=float(np.exp(i.mean)), lo=float(np.exp(i.lo)), hi=float(np.exp(i.hi)))


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
            _band(ax, group, "accuracy", arm, arm_color(arm), scale="logit")
        bounded(ax, 0, 1)
        ax.axhline(
            sub["majority"].mean(), ls="--", color="k", lw=1, label="majority class (chance)"
        )
        ax.set(
            title=task,
            xlabel="after training task #",
            xticks=range(1, len(tasks) + 1),
            ylim=(0, 1.02),
        )
    axes[0, 0].set_ylabel("evaluation accuracy")
    axes[0, -1].legend(fontsize=8)
    set_caption(
        fig,
        f"Each arm at its operating rate; {order_label(study.orders[0])}; "
        f"n = {len(study.seeds)} seeds (line: mean on the log-odds scale; band: its 95% "
        "t-interval over seeds, which stays inside [0, 1])",
    )
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
        _band(ax, group, "ratio", arm, arm_color(arm), scale="log")
    ax.axhline(1, color="k", lw=0.8)
    ax.set(
        yscale="log",
        xlabel="after training task # (0 = before)",
        ylabel="perplexity / initial",
        title="Language-model forgetting",
        xticks=sorted(ppl["stage"].unique()),
    )
    ax.legend(fontsize=8)
    set_caption(
        fig,
        f"Each arm at its operating rate; {order_label(study.orders[0])}; n = "
        f"{len(study.seeds)} seeds. Line: geometric mean; band: 95% t-interval of the log ratio, "
        "so a seed whose perplexity explodes widens the band on both sides, below ×1 too. "
        "Markers are measurements; a dashed line crosses tasks after which that arm's perplexity "
        "was not measured.",
    )
    return fig


def frontiers(
    study: Study, arms: list[str] | None = None, outcomes: tuple[str, ...] = STABILITY
) -> Figure:
    """Stability against learning across learning rates: per arm, each outcome against validation
    plasticity (gain over head-only), mean ± 95% CI over seeds at each rate; a second row zooms
    on the learning range every arm reaches, where arms are compared."""
    arms = [a for a in (arms or study.arms) if a != "head-only"]
    points = {(arm, o): _frontier_points(study, arm, o) for arm in arms for o in outcomes}
    drawn = {k: p for k, p in points.items() if np.isfinite(p["x"] + p["y"]).any()}
    zoom = _common_range([p for p in drawn.values()])
    fig, axes = figure(len(outcomes), 2 if zoom else 1, width=4.6, height=3.6)
    for col, outcome in enumerate(outcomes):
        for row, ax in enumerate(axes[:, col]):
            for k, arm in enumerate(arms):
                if (arm, outcome) in drawn:
                    _draw_frontier(
                        ax, drawn[(arm, outcome)], arm, top_label=k if row == 0 else None
                    )
            ax.axvline(0, color="k", lw=0.6)
            if OUTCOMES[outcome].scale == "ratio":
                ax.axhline(1, color="k", lw=0.6)
                ax.set_yscale("log")
            ax.set(
                xlabel="validation gain over head-only (points)",
                ylabel=OUTCOMES[outcome].axis_label,
            )
        missing = [arm for arm in arms if (arm, outcome) not in drawn]
        if missing:
            axes[0, col].set_title(
                wrapped(f"not defined for {', '.join(missing)}", fig, 8), fontsize=8
            )
        if zoom:
            _zoom(axes[1, col], [drawn[(a, outcome)] for a in arms if (a, outcome) in drawn], zoom)
            axes[1, col].legend(fontsize=7)
            axes[1, col].set_title(
                "zoom: the gains over the head alone every arm reaches", fontsize=9
            )
    axes[0, 0].legend(fontsize=8)
    set_caption(
        fig,
        f"Each point one learning rate, the highest labelled (past some rate an arm breaks and "
        f"its gain falls below zero); {pooled(study)}; x = 0 is the head alone (chance is below "
        "it)"
        # Runs with per-example scores are matched on NLL by the claims, not on this axis.
        + (
            "; x is accuracy gain: the registered claims match arms on validation NLL drop"
            if all(r.has_scores() for r in study.runs)
            else ""
        )
        + ("; lower row: a zoom without error bars" if zoom else "")
        + (
            "; a rate where a run broke (its loss or perplexity not a number) has no mean and "
            "is not drawn"
            if any(study.broke(a, lr) for a in arms for lr in study.rates(a))
            else ""
        ),
    )
    return fig


def _frontier_points(study: Study, arm: str, outcome: str) -> pd.DataFrame:
    """One arm's frontier: per rate, plasticity (points) and the outcome as shown, with 95%
    half-widths (perplexity averaged on the log scale and drawn back as a ratio)."""
    tasks = study.earlier(study.learned_tasks(arm)) if outcome == "forgetting" else None
    show = OUTCOMES[outcome].shown
    rows = []
    for lr in study.rates(arm):
        p = study.over_seeds(arm, lr, study.plasticity)
        m = study.over_seeds(arm, lr, lambda r, o=outcome, t=tasks: study.outcome(r, o, t))
        half = np.nan_to_num(m.half)
        rows.append(
            {
                "rate": lr,
                "x": p.mean * 100,
                "xerr": np.nan_to_num(p.half) * 100,
                "y": show(m.mean),
                "below": show(m.mean) - show(m.mean - half),
                "above": show(m.mean + half) - show(m.mean),
            }
        )
    return pd.DataFrame(rows)


def _draw_frontier(ax, points: pd.DataFrame, arm: str, top_label: int | None) -> None:
    """One arm's frontier on ``ax``: with error bars and its highest rate labelled (the
    ``top_label``-th label, stacked so labels of several arms do not overprint), or, in a zoom
    (``top_label`` None), the points alone: bars of points outside it would cross it."""
    color = arm_color(arm)
    bars = top_label is not None
    ax.errorbar(
        points["x"],
        points["y"],
        xerr=points["xerr"] if bars else None,
        yerr=[points["below"], points["above"]] if bars else None,
        fmt="o-",
        color=color,
        label=arm,
        capsize=2,
        lw=1.5,
        ms=4,
    )
    # Only the highest rate is labelled: the lowest rates of every arm meet near x = 0, where
    # their labels would pile up.
    top = points.iloc[-1]
    if bars and np.isfinite(top["x"] + top["y"]):
        ax.annotate(
            f"{top['rate']:g}",
            (top["x"], top["y"]),
            fontsize=7,
            color=color,
            xytext=(4, 4 + 9 * top_label),
            textcoords="offset points",
        )


def _common_range(frontiers: list[pd.DataFrame]) -> tuple[float, float] | None:
    """The gains over the head alone every frontier reaches (None if they share none): where
    arms learn, not where they break below the head's level."""
    if not frontiers:
        return None
    low = max(0.0, *(np.nanmin(p["x"]) for p in frontiers))
    high = min(np.nanmax(p["x"]) for p in frontiers)
    return (low, high) if high > low else None


def _zoom(ax, frontiers: list[pd.DataFrame], span: tuple[float, float]) -> None:
    """Limit ``ax`` to ``span`` on x (padded) and to the points that fall inside it on y."""
    if not frontiers:
        return
    low, high = span
    pad = 0.15 * (high - low)
    ax.set_xlim(low - pad, high + pad)
    inside = pd.concat(frontiers)
    inside = inside[(inside["x"] >= low - pad) & (inside["x"] <= high + pad)]
    ys = pd.concat([inside["y"] - inside["below"], inside["y"] + inside["above"]])
    ys = ys[np.isfinite(ys)]
    if ax.get_yscale() == "log":
        ys = ys[ys > 0]
        if len(ys):
            ax.set_ylim(ys.min() / 1.1, ys.max() * 1.1)
    elif len(ys):
        margin = 0.1 * (ys.max() - ys.min()) or 0.1
        ax.set_ylim(ys.min() - margin, ys.max() + margin)


def matched_vs_same_rate(rows: pd.DataFrame) -> Figure:
    """Differences (reference arm − other) with 95% CIs, at matched plasticity and at one rate;
    a pair with no matched reading says why instead of a point."""
    fig, axes = figure(1, 1, width=9.5, height=0.8 * len(rows) + 1.8)
    ax = axes[0, 0]
    y = np.arange(len(rows))
    for offset, prefix, color, label in (
        (-0.12, "matched", "C0", "at matched plasticity"),
        (0.12, "same", "C7", "at one learning rate"),
    ):
        mean, lo, hi = rows[f"{prefix}_mean"], rows[f"{prefix}_lo"], rows[f"{prefix}_hi"]
        shown = np.isfinite(mean.to_numpy(dtype=float))
        if shown.any():
            ax.errorbar(
                mean[shown],
                y[shown] + offset,
                xerr=[np.nan_to_num((mean - lo)[shown]), np.nan_to_num((hi - mean)[shown])],
                fmt="o",
                color=color,
                capsize=3,
                label=label,
            )
    ax.axvline(0, color="k", lw=0.8)
    labels = []
    for _, row in rows.iterrows():
        label = (
            f"{row['label']} (one rate: {row['rate']:g})"
            if np.isfinite(row["rate"])
            else row["label"]
        )
        if not np.isfinite(row["matched_mean"]):
            # Said under the pair's name: why it has no point at matched plasticity.
            reason = row["unmatched"] or "no common learning range"
            label += "\n" + textwrap.fill(f"not matched: {reason}", 48)
        labels.append(label)
    ax.set(
        yticks=y,
        yticklabels=labels,
        xlabel=rows["unit"].iloc[0] if len(rows) else "",
        ylim=(-0.7, len(rows) - 0.3),
    )
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Difference (95% CI over {int(rows['n'].max()) if len(rows) else 0} seeds)")
    return fig

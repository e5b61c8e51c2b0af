"""One function per figure; each returns a matplotlib Figure (so tests and notebooks call the same code).

The seaborn theme is set once, here. ``save`` writes PNGs with fixed metadata, so re-running a
notebook on the same results gives identical bytes. Every result figure says how many seeds
(and task orders) it pools and where chance lies, in its title or legend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from curlora import cur
from curlora.sampling import leverage_scores
from curlora.stats import mean_ci, t_interval
from curlora.study import OUTCOMES, Study

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "curlora"
#: One colour per arm family, the same in every figure.
METHOD_COLORS = {"curlora": "C0", "lora": "C3", "svd": "C2", "head-only": "C7", "full": "C4"}
MODE_COLORS = {
    "inverse": "C0",
    "inverse_eps": "C1",
    "norm": "C2",
    "uniform": "C7",
    "lowest": "C5",
    "svd": "C3",
}
#: Short axis labels of the stability outcomes.
FRONTIER_LABELS = {
    "ppl_ratio": "perplexity after / before",
    "forgetting": "forgetting, learned tasks (points)",
    "output_shift": "output shift (mean over layers)",
}
ARM_COLORS = {
    "curlora": "C0",
    "lora": "C3",
    "lora-r1": "C1",
    "svd": "C2",
    "head-only": "C7",
    "curlora-inverse_eps": "C9",
    "curlora-norm": "C8",
    "curlora-uniform": "C5",
    "curlora-lowest": "C4",
}


def _figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kw):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _color(arm: str) -> str:
    return ARM_COLORS.get(arm, METHOD_COLORS.get(arm.split("-")[0], "C6"))


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG without a software/date stamp (identical bytes on re-run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return path


def _pooled(study: Study) -> str:
    n, k = len(study.seeds), len(study.orders)
    return f"n = {n} seed{'s' * (n != 1)}" + (f" × {k} task orders" if k > 1 else "")


# ---------------------------------------------------------------- 01: CUR sampling


def norm_distributions(weights: dict[str, torch.Tensor]) -> Figure:
    """Histograms of column and row squared-norm shares p_j of each weight (log x)."""
    fig, axes = _figure(2, 1)
    for name, W in weights.items():
        for ax, axis in zip(axes[0], ("columns", "rows"), strict=True):
            p = cur.selection_probabilities(W, axis, "norm").numpy()
            ax.hist(p * len(p), bins=np.logspace(-2, 1.2, 40), histtype="step", lw=1.5, label=name)
            ax.set(
                xscale="log",
                xlabel="n · p_j  (1 = average share)",
                ylabel="count",
                title=f"{axis}: ‖W‖² share, eq. 3",
            )
    axes[0, 0].legend(fontsize=8)
    return fig


def leverage_vs_norm(W: torch.Tensor, k: int, axis: str = "columns", title: str = "") -> Figure:
    """Statistical leverage (top-k singular vectors, Mahoney & Drineas 2009) against the
    squared-norm share the paper calls leverage, one point per column (row)."""
    fig, axes = _figure(1, 1, width=5.5)
    ax = axes[0, 0]
    share = cur.selection_probabilities(W, axis, "norm").numpy()
    lev = leverage_scores(W, k, axis).numpy()
    n = len(share)
    ax.scatter(share * n, lev * n, s=6, alpha=0.5, color="C0")
    lim = [
        min((share * n).min(), (lev * n).min()) * 0.8,
        max((share * n).max(), (lev * n).max()) * 1.2,
    ]
    ax.plot(lim, lim, color="k", lw=0.6, label="equal")
    rho = np.corrcoef(np.log(share + 1e-30), np.log(lev + 1e-30))[0, 1]
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="n · ‖W‖² share (the paper's 'leverage', eq. 3)",
        ylabel=f"n · statistical leverage, top-{k}",
        title=title or f"{axis} of a {W.shape[0]}×{W.shape[1]} weight (log-corr {rho:.2f})",
    )
    ax.legend(fontsize=8)
    return fig


def selection_probabilities(
    W: torch.Tensor, modes=cur.PROBABILITY_MODES, axis: str = "columns", title: str = ""
) -> Figure:
    """Each mode's selection probability against the column's (row's) norm share."""
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    share = cur.selection_probabilities(W, axis, "norm").numpy()
    order = np.argsort(share)
    n = len(share)
    for mode in modes:
        p = cur.selection_probabilities(W, axis, mode).numpy()
        ax.plot(share[order] * n, p[order] * n, label=mode, color=MODE_COLORS.get(mode), lw=2)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"n · p_j (norm share of the {axis[:-1]})",
        ylabel="n · selection probability",
        title=title or f"{axis} of a {W.shape[0]}×{W.shape[1]} weight",
    )
    ax.axhline(1, color="k", lw=0.5, label="uniform")
    ax.legend()
    return fig


def picked_columns(W: torch.Tensor, rank: int, mode: str, seed: int, title: str = "") -> Figure:
    """Which columns and rows one draw picks: every column's (row's) norm share against its
    selection probability under ``mode``, the picked ones marked (larger when picked twice)."""
    fig, axes = _figure(2, 1, width=4.6)
    g = torch.Generator().manual_seed(seed)
    for ax, axis in zip(axes[0], ("columns", "rows"), strict=True):
        share = cur.selection_probabilities(W, axis, "norm").numpy()
        n = len(share)
        prob = (
            cur.selection_probabilities(W, axis, mode).numpy()
            if mode in cur.PROBABILITY_MODES
            else np.full(n, np.nan)
        )
        picks = cur.select_indices(W, axis, rank, mode, g).numpy()
        idx, counts = np.unique(picks, return_counts=True)
        if mode in cur.PROBABILITY_MODES:
            ax.scatter(share * n, prob * n, s=4, color="0.7", label="all")
            ax.scatter(
                share[idx] * n,
                prob[idx] * n,
                s=20 * counts,
                color=MODE_COLORS.get(mode, "C0"),
                label="picked",
            )
            ax.set(yscale="log", ylabel="n · selection probability")
        else:
            ax.scatter(share * n, np.zeros(n), s=4, color="0.7", label="all")
            ax.scatter(
                share[idx] * n,
                np.zeros(len(idx)),
                s=20 * counts,
                color=MODE_COLORS.get(mode, "C0"),
                label="picked",
            )
            ax.set(yticks=[], ylabel="(deterministic)")
        ax.set(
            xscale="log",
            xlabel="n · norm share",
            title=f"{axis}: {len(idx)} distinct of {rank} picks",
        )
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{title} — {mode} sampling, r = {rank}, seed {seed}", fontsize=10)
    return fig


def distance_from_uniform(table: pd.DataFrame) -> Figure:
    """Total-variation distance from uniform vs matrix width, one line per mode (the +0.001 effect)."""
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    for mode, group in table.groupby("mode", sort=False):
        ax.plot(
            group["width"], group["tv_from_uniform"], "o-", label=mode, color=MODE_COLORS.get(mode)
        )
    ax.set(
        xscale="log",
        xlabel="number of columns",
        ylabel="TV distance from uniform",
        title="How far sampling is from uniform as width grows",
    )
    ax.legend()
    return fig


def _strip(ax, table: pd.DataFrame, value: str, modes: list[str]) -> None:
    for i, mode in enumerate(modes):
        v = table.loc[table["mode"] == mode, value].to_numpy()
        # Fixed offsets instead of random jitter keep the PNG identical on every run.
        x = i + np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.array([i])
        ax.scatter(x, v, color=MODE_COLORS.get(mode), s=30)
    ax.set(xticks=range(len(modes)), xticklabels=modes)


def picked_energy(table: pd.DataFrame) -> Figure:
    """Share of ‖W‖_F² in the picked columns, per mode (points = seeds)."""
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    modes = list(dict.fromkeys(table["mode"]))
    _strip(ax, table, "share", modes)
    n = table["seed"].nunique()
    ax.set(
        yscale="log",
        ylabel="share of ‖W‖² in picked columns",
        title=f"What C actually holds (points: {n} seeds)",
    )
    return fig


def selection_statistics(table: pd.DataFrame) -> Figure:
    """Duplicates among the r picks, and the condition number of the distinct columns of C and
    rows of R, per mode (points = seeds)."""
    fig, axes = _figure(3, 1, width=4.2)
    modes = list(dict.fromkeys(table["mode"]))
    n, r = table["seed"].nunique(), int(table["rank"].iloc[0])
    long = pd.concat(
        [table.assign(value=table[f"{f}_duplicates"], factor=f) for f in ("C", "R")],
        ignore_index=True,
    )
    _strip(axes[0, 0], long, "value", modes)
    axes[0, 0].set(ylabel="share of picks that repeat one", title=f"Duplicates among r = {r} draws")
    for ax, f in zip(axes[0, 1:], ("C", "R"), strict=True):
        _strip(ax, table, f"{f}_cond", modes)
        ax.set(yscale="log", ylabel="σ_max / σ_min", title=f"Conditioning of {f} (distinct picks)")
    for ax in axes[0]:
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(f"Points: {n} sampling seeds", fontsize=9)
    return fig


def reconstruction_error(table: pd.DataFrame, best: pd.DataFrame | None = None) -> Figure:
    """Classical CUR (C⁺WR⁺) relative error vs rank per mode (mean over seeds), beside the best
    rank-k error of the truncated SVD."""
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    for mode, group in table.groupby("mode", sort=False):
        mean = group.groupby("rank")["error"].mean()
        ax.plot(mean.index, mean.values, "o-", label=mode, color=MODE_COLORS.get(mode))
    if best is not None:
        ax.plot(best["rank"], best["error"], "k--", label="best rank-k (SVD)")
    n = table["seed"].nunique()
    ax.set(
        xlabel="rank r",
        ylabel="‖W − CUR‖_F / ‖W‖_F",
        title=f"Classical CUR reconstruction (mean of {n} seeds)",
    )
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- 02: what training changed


def delta_spectra(layers: pd.DataFrame, column: str = "delta_sv", caption: str = "") -> Figure:
    """Singular values of ΔW (or of U, ``column='u_sv'``) after each task, median over layers,
    one panel per arm; ``caption`` says which runs (seed, rates)."""
    layers = layers[layers[column].map(len) > 0]
    arms = list(dict.fromkeys(layers["arm"]))
    fig, axes = _figure(len(arms), 1, width=4.2, sharey=True)
    for ax, arm in zip(axes[0], arms, strict=True):
        sub = layers[layers["arm"] == arm]
        for stage, group in sub.groupby("stage"):
            width = max(map(len, group[column]))
            sv = np.array([np.pad(v, (0, width - len(v))) for v in group[column]])
            med = np.median(sv, axis=0)
            ax.plot(np.arange(1, len(med) + 1), med, "o-", ms=3, label=f"after task {stage}")
        ax.set(yscale="log", xlabel="index", title=arm)
    what = "ΔW" if column == "delta_sv" else "U"
    axes[0, 0].set_ylabel(f"singular value of {what} (median over layers)")
    axes[0, -1].legend(fontsize=8)
    if caption:
        fig.suptitle(caption, fontsize=9)
    return fig


def change_by_layer(layers: pd.DataFrame, value: str = "delta_rel", caption: str = "") -> Figure:
    """A per-layer change measure (‖ΔW‖/‖W‖ or output shift) after the last task, per arm."""
    fig, axes = _figure(1, 1, width=8)
    ax = axes[0, 0]
    last = layers[layers["stage"] == layers["stage"].max()]
    for arm, group in last.groupby("arm", sort=False):
        per_layer = group.groupby("layer", sort=False)[value].mean()
        ax.plot(
            np.arange(len(per_layer)), per_layer.values, "o-", ms=3, label=arm, color=_color(arm)
        )
    labels = {"delta_rel": "‖ΔW‖_F / ‖W‖_F", "output_shift": "‖x·ΔWᵀ‖ / ‖x·Wᵀ‖ on held-out text"}
    ax.set(
        yscale="log",
        xlabel="adapted layer (model order)",
        ylabel=labels.get(value, value),
        title=f"How much each arm changes each layer ({labels.get(value, value)})",
    )
    ax.legend()
    if caption:
        fig.suptitle(caption, fontsize=9)
    return fig


def effective_step(layers: pd.DataFrame, caption: str = "") -> Figure:
    """Per arm: ‖ΔW‖_F and the output shift per unit of trainable update ‖θ − θ₀‖ (the scale
    C and R give an update), per layer after the last task."""
    last = layers[(layers["stage"] == layers["stage"].max()) & (layers["update_norm"] > 0)]
    last = last.assign(
        weight_per_step=last["delta_norm"] / last["update_norm"],
        shift_per_step=last["output_shift"] / last["update_norm"],
    )
    arms = list(dict.fromkeys(last["arm"]))
    fig, axes = _figure(2, 1, width=5)
    for ax, value, label in zip(
        axes[0],
        ("weight_per_step", "shift_per_step"),
        ("‖ΔW‖_F / ‖θ − θ₀‖", "output shift / ‖θ − θ₀‖"),
        strict=True,
    ):
        for i, arm in enumerate(arms):
            v = last.loc[last["arm"] == arm, value].to_numpy()
            ax.scatter(i + np.linspace(-0.25, 0.25, len(v)), v, s=8, color=_color(arm), alpha=0.6)
            ax.plot([i - 0.3, i + 0.3], [np.median(v)] * 2, color="k", lw=1.5)
        ax.set(yscale="log", ylabel=label, xticks=range(len(arms)), xticklabels=arms)
        ax.tick_params(axis="x", rotation=30)
    axes[0, 0].set_title("Weight change per unit of update")
    axes[0, 1].set_title("Output change per unit of update")
    fig.suptitle(f"Points: adapted layers after the last task (bar: median). {caption}", fontsize=9)
    return fig


# ---------------------------------------------------------------- 03: parameter counts


def parameter_counts(table: pd.DataFrame, rank: int = 16) -> Figure:
    """Trainable parameters per model and method at ``rank`` (log scale, heads excluded)."""
    fig, axes = _figure(1, 1, width=8)
    ax = axes[0, 0]
    sub = table[table["rank"] == rank]
    sns.barplot(sub, x="model", y="trainable", hue="method", palette=METHOD_COLORS, ax=ax)
    ax.set(
        yscale="log",
        ylabel="trainable parameters",
        xlabel="",
        title=f"Trainable parameters, Q/K/V at rank {rank} (heads excluded)",
    )
    ax.tick_params(axis="x", rotation=20)
    return fig


# ---------------------------------------------------------------- 04: forgetting


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
    fig, axes = _figure(len(runs), 1, width=4.2, height=3.8)
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
    fig, axes = _figure(len(tasks), 1, width=4.2, sharey=True)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = acc[acc["task"] == task]
        for arm, group in sub.groupby("arm", sort=False):
            _band(ax, group, "accuracy", arm, _color(arm))
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
    fig.suptitle(f"Each arm at its operating rate; {_pooled(study)} (first task order)", fontsize=9)
    return fig


def perplexity_trajectory(study: Study, arms: list[str] | None = None) -> Figure:
    """Perplexity of the original LM head after each task, relative to the start (geometric mean
    ± 95% CI, log scale), at each arm's operating rate."""
    runs = _operating_runs(study, arms)
    ppl = pd.concat(
        [r.perplexity.assign(arm=arm, seed=r.spec.seed) for arm, rs in runs.items() for r in rs]
    )
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    for arm, group in ppl.groupby("arm", sort=False):
        # Ratios average on the log scale, as the findings do: an arithmetic band around a
        # ratio that explodes in one seed reaches below zero.
        _band(ax, group, "ratio", arm, _color(arm), log=True)
    ax.axhline(1, color="k", lw=0.8)
    ax.set(
        yscale="log",
        xlabel="after training task # (0 = before)",
        ylabel="perplexity / initial (geometric mean)",
        title=f"Language-model forgetting ({_pooled(study)})",
        xticks=sorted(ppl["stage"].unique()),
    )
    ax.legend()
    return fig


def frontiers(
    study: Study, arms: list[str] | None = None, outcomes: tuple[str, ...] = tuple(OUTCOMES)
) -> Figure:
    """Stability against learning across learning rates: per arm, each outcome against validation
    plasticity (gain over head-only), mean ± 95% CI over seeds at each rate."""
    arms = [a for a in (arms or study.arms) if a != "head-only"]
    fig, axes = _figure(len(outcomes), 1, width=4.6, height=4.0)
    for ax, outcome in zip(axes[0], outcomes, strict=True):
        for arm in arms:
            tasks = study.earlier(study.learned_tasks(arm)) if outcome == "forgetting" else None
            xs, ys, xe, lows, highs = [], [], [], [], []
            for lr in study.rates(arm):
                p = t_interval(list(study.per_seed(arm, lr, study.plasticity).values()))
                m = t_interval(
                    list(
                        study.per_seed(
                            arm, lr, lambda r, o=outcome, t=tasks: study.outcome(r, o, t)
                        ).values()
                    )
                )
                # Perplexity is averaged on the log scale and drawn back as a ratio.
                show = (
                    np.exp
                    if outcome == "ppl_ratio"
                    else (lambda v: v * 100)
                    if outcome == "forgetting"
                    else (lambda v: v)
                )
                half = np.nan_to_num(m.half)
                xs.append(p.mean * 100)
                xe.append(np.nan_to_num(p.half) * 100)
                ys.append(show(m.mean))
                lows.append(show(m.mean) - show(m.mean - half))
                highs.append(show(m.mean + half) - show(m.mean))
            ax.errorbar(
                xs,
                ys,
                xerr=xe,
                yerr=[lows, highs],
                fmt="o-",
                color=_color(arm),
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
                    color=_color(arm),
                    xytext=(4, -4 if va == "top" else 4),
                    textcoords="offset points",
                    va=va,
                )
        ax.axvline(0, color="k", lw=0.6)
        if outcome == "ppl_ratio":
            ax.axhline(1, color="k", lw=0.6)
            ax.set_yscale("log")
        ax.set(xlabel="validation gain over head-only (points)", ylabel=FRONTIER_LABELS[outcome])
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(
        f"Each point one learning rate (lowest and highest labelled); {_pooled(study)}; "
        "x = 0 is the head alone (chance is below it)",
        fontsize=9,
    )
    return fig


def matched_vs_same_rate(rows: pd.DataFrame) -> Figure:
    """Differences (reference arm − other) with 95% CIs, at matched plasticity and at one rate."""
    fig, axes = _figure(1, 1, width=6.5, height=0.6 * len(rows) + 1.6)
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

"""One function per figure; each returns a matplotlib Figure (so tests and notebooks call the same code).

The seaborn theme is set once, here. ``save`` writes PNGs with fixed metadata, so re-running a
notebook on the same results gives identical bytes.
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
from curlora.metrics import mean_ci

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "curlora"
#: One colour per method, the same in every figure.
METHOD_COLORS = {"curlora": "C0", "lora": "C3", "svd": "C2", "head-only": "C7", "full": "C4"}
MODE_COLORS = {"inverse": "C0", "inverse_eps": "C1", "norm": "C2", "uniform": "C7", "lowest": "C5"}


def _figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kw):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG without a software/date stamp (identical bytes on re-run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return path


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
    ax.axhline(1, color="k", lw=0.5)
    ax.legend()
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


def picked_energy(table: pd.DataFrame) -> Figure:
    """Share of ‖W‖_F² in the picked columns, per mode (points = seeds)."""
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    modes = list(dict.fromkeys(table["mode"]))
    for i, mode in enumerate(modes):
        share = table.loc[table["mode"] == mode, "share"].to_numpy()
        # Fixed offsets instead of random jitter keep the PNG identical on every run.
        x = i + np.linspace(-0.15, 0.15, len(share)) if len(share) > 1 else np.array([i])
        ax.scatter(x, share, color=MODE_COLORS.get(mode), s=30)
    ax.set(
        yscale="log",
        ylabel="share of ‖W‖² in picked columns",
        title="What C actually holds",
        xticks=range(len(modes)),
        xticklabels=modes,
    )
    return fig


def reconstruction_error(table: pd.DataFrame) -> Figure:
    """Classical CUR (C⁺WR⁺) relative error vs rank, one line per mode (mean over seeds)."""
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    for mode, group in table.groupby("mode", sort=False):
        mean = group.groupby("rank")["error"].mean()
        ax.plot(mean.index, mean.values, "o-", label=mode, color=MODE_COLORS.get(mode))
    ax.set(xlabel="rank r", ylabel="‖W − CUR‖_F / ‖W‖_F", title="Classical CUR reconstruction")
    ax.legend()
    return fig


# ---------------------------------------------------------------- 02: U spectra


def u_spectra(layers: pd.DataFrame, method_col: str = "method") -> Figure:
    """Singular values of ΔW after each task (median over layers), one panel per method."""
    methods = list(dict.fromkeys(layers[method_col]))
    fig, axes = _figure(len(methods), 1, width=4.2, sharey=True)
    for ax, method in zip(axes[0], methods, strict=True):
        sub = layers[layers[method_col] == method]
        for stage, group in sub.groupby("stage"):
            sv = np.array(
                [
                    np.pad(v, (0, max(map(len, group["delta_sv"])) - len(v)))
                    for v in group["delta_sv"]
                ]
            )
            med = np.median(sv, axis=0)
            ax.plot(np.arange(1, len(med) + 1), med, "o-", ms=3, label=f"after task {stage}")
        ax.set(yscale="log", xlabel="index", title=method)
    axes[0, 0].set_ylabel("singular value of ΔW (median over layers)")
    axes[0, -1].legend(fontsize=8)
    return fig


def change_by_layer(
    layers: pd.DataFrame, value: str = "delta_rel", method_col: str = "method"
) -> Figure:
    """A per-layer change measure (‖ΔW‖/‖W‖ or output shift) after the last task, per method."""
    fig, axes = _figure(1, 1, width=8)
    ax = axes[0, 0]
    last = layers[layers["stage"] == layers["stage"].max()]
    for method, group in last.groupby(method_col, sort=False):
        per_layer = group.groupby("layer", sort=False)[value].mean()
        ax.plot(
            np.arange(len(per_layer)),
            per_layer.values,
            "o-",
            ms=3,
            label=method,
            color=METHOD_COLORS.get(method),
        )
    labels = {"delta_rel": "‖ΔW‖_F / ‖W‖_F", "output_shift": "‖x·ΔWᵀ‖ / ‖x·Wᵀ‖ on held-out text"}
    ax.set(
        yscale="log",
        xlabel="adapted layer (model order)",
        ylabel=labels.get(value, value),
        title=f"How much each method changes each layer ({labels.get(value, value)})",
    )
    ax.legend()
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


def accuracy_heatmaps(results: list) -> Figure:
    """Mean accuracy matrix R[i][j] per method (seeds pooled)."""
    by_method: dict[str, list] = {}
    for r in results:
        by_method.setdefault(r.spec.method, []).append(r.accuracy_matrix())
    fig, axes = _figure(len(by_method), 1, width=4.2, height=3.8)
    for ax, (method, mats) in zip(axes[0], by_method.items(), strict=True):
        mean = sum(mats) / len(mats)
        sns.heatmap(mean, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar=False, ax=ax)
        ax.set(title=f"{method} (n={len(mats)})", xlabel="evaluated task", ylabel="after training")
    return fig


def _band(ax, group: pd.DataFrame, value: str, method: str) -> None:
    """Mean ± 95% CI of ``value`` per stage over seeds, as a line with a shaded band."""
    stats = group.groupby("stage")[value].apply(lambda v: mean_ci(list(v)))
    x = stats.index.to_numpy()
    mean = np.array([m for m, _ in stats])
    half = np.nan_to_num(np.array([h for _, h in stats]))  # one seed: no band
    color = METHOD_COLORS.get(method)
    ax.plot(x, mean, "o-", label=method, color=color)
    ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.15)


def _long(results: list) -> pd.DataFrame:
    return pd.concat([r.accuracy.assign(method=r.spec.method, seed=r.spec.seed) for r in results])


def task_accuracy_curves(results: list) -> Figure:
    """Accuracy of each task along the sequence: mean ± 95% CI over seeds, majority level dashed."""
    acc = _long(results)
    tasks = list(results[0].spec.tasks)
    fig, axes = _figure(len(tasks), 1, width=4.2, sharey=True)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = acc[acc["task"] == task]
        for method, group in sub.groupby("method", sort=False):
            _band(ax, group, "accuracy", method)
        ax.axhline(sub["majority"].mean(), ls="--", color="k", lw=1, label="majority class (mean)")
        ax.set(
            title=task,
            xlabel="after training task #",
            xticks=range(1, len(tasks) + 1),
            ylim=(0, 1.02),
        )
    axes[0, 0].set_ylabel("accuracy (mean ± 95% CI)")
    axes[0, -1].legend(fontsize=8)
    return fig


def perplexity_trajectory(results: list) -> Figure:
    """Perplexity of the original LM head after each task, relative to the start (mean ± 95% CI)."""
    ppl = pd.concat([r.perplexity.assign(method=r.spec.method, seed=r.spec.seed) for r in results])
    fig, axes = _figure(1, 1, width=6)
    ax = axes[0, 0]
    for method, group in ppl.groupby("method", sort=False):
        _band(ax, group, "ratio", method)
    ax.axhline(1, color="k", lw=0.8)
    ax.set(
        xlabel="after training task # (0 = before)",
        ylabel="perplexity / initial",
        title="Language-model forgetting",
        xticks=sorted(ppl["stage"].unique()),
    )
    ax.legend()
    return fig


def stability_plasticity(table: pd.DataFrame) -> Figure:
    """Task accuracy vs perplexity increase across learning rates, one curve per method."""
    fig, axes = _figure(1, 1, width=6.5, height=4.2)
    ax = axes[0, 0]
    mean = (
        table.groupby(["method", "lr"], sort=False)[["accuracy", "ppl_final", "ppl_initial"]]
        .mean()
        .reset_index()
    )
    mean["ppl_ratio"] = mean["ppl_final"] / mean["ppl_initial"]
    for method, group in mean.groupby("method", sort=False):
        group = group.sort_values("lr")
        color = METHOD_COLORS.get(method)
        ax.plot(group["ppl_ratio"], group["accuracy"], "o-", color=color, label=method)
        for _, row in group.iterrows():
            ax.annotate(
                f"{row['lr']:g}",
                (row["ppl_ratio"], row["accuracy"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
                color=color,
            )
    ax.axhline(table["majority"].mean(), ls="--", color="k", lw=1, label="majority class")
    ax.set(
        xlabel="perplexity after / before (forgetting →)",
        ylabel="task accuracy",
        title="Stability–plasticity: each point one learning rate",
    )
    ax.legend(fontsize=8)
    return fig

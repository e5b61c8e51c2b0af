"""Notebook 01's figures: which columns and rows each sampling rule picks, and what they carry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from curlora import cur
from curlora.plots.style import figure, mode_color
from curlora.sampling import leverage_scores


def norm_distributions(weights: dict[str, torch.Tensor]) -> Figure:
    """Histograms of column and row squared-norm shares p_j of each weight (log x)."""
    fig, axes = figure(2, 1)
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
    fig, axes = figure(1, 1, width=5.5)
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
    fig, axes = figure(1, 1, width=6)
    ax = axes[0, 0]
    share = cur.selection_probabilities(W, axis, "norm").numpy()
    order = np.argsort(share)
    n = len(share)
    for mode in modes:
        p = cur.selection_probabilities(W, axis, mode).numpy()
        ax.plot(share[order] * n, p[order] * n, label=mode, color=mode_color(mode), lw=2)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=f"n · p_j (norm share of the {axis[:-1]})",
        ylabel="n · selection probability",
        title=title or f"{axis} of a {W.shape[0]}×{W.shape[1]} weight",
    )
    # The uniform level as a reference line, labelled only where no uniform mode is drawn on it.
    ax.axhline(1, color="k", lw=0.5, label=None if "uniform" in modes else "uniform")
    ax.legend()
    return fig


def picked_columns(W: torch.Tensor, rank: int, mode: str, seed: int, title: str = "") -> Figure:
    """Which columns and rows one draw picks: every column's (row's) norm share against its
    selection probability under ``mode``, the picked ones marked (larger when picked twice)."""
    fig, axes = figure(2, 1, width=4.6)
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
                color=mode_color(mode) or "C0",
                label="picked",
            )
            ax.set(yscale="log", ylabel="n · selection probability")
        else:
            ax.scatter(share * n, np.zeros(n), s=4, color="0.7", label="all")
            ax.scatter(
                share[idx] * n,
                np.zeros(len(idx)),
                s=20 * counts,
                color=mode_color(mode) or "C0",
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
    fig, axes = figure(1, 1, width=6)
    ax = axes[0, 0]
    for mode, group in table.groupby("mode", sort=False):
        ax.plot(group["width"], group["tv_from_uniform"], "o-", label=mode, color=mode_color(mode))
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
        ax.scatter(x, v, color=mode_color(mode), s=30)
    ax.set(xticks=range(len(modes)), xticklabels=modes)


def picked_energy(table: pd.DataFrame) -> Figure:
    """Share of ‖W‖_F² in the picked columns, per mode (points = seeds)."""
    fig, axes = figure(1, 1, width=6)
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
    fig, axes = figure(3, 1, width=4.2)
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
    fig, axes = figure(1, 1, width=6)
    ax = axes[0, 0]
    for mode, group in table.groupby("mode", sort=False):
        mean = group.groupby("rank")["error"].mean()
        ax.plot(mean.index, mean.values, "o-", label=mode, color=mode_color(mode))
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

"""Notebook 02's figures: what training changed — ΔW spectra, change per layer, step per update."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from curlora.analysis import effective_steps
from curlora.plots.style import arm_color, figure, set_caption

#: Singular values below this share of a spectrum's largest are numerical zeros (a rank-r ΔW
#: has r non-zero values; float32 leaves the rest near 1e-7 of the top), so they are not drawn.
NUMERICAL_ZERO = 1e-5
#: Panels per row in a grid of per-arm panels.
PANELS_PER_ROW = 4


def delta_spectra(layers: pd.DataFrame, column: str = "delta_sv", caption: str = "") -> Figure:
    """Singular values of ΔW (or of U, ``column='u_sv'``) after each task, median over layers,
    one panel per arm; ``caption`` says which runs (seed, rates)."""
    layers = layers[layers[column].map(len) > 0]
    arms = list(dict.fromkeys(layers["arm"]))
    ncols = min(len(arms), PANELS_PER_ROW)
    nrows = -(-len(arms) // ncols)
    fig, axes = figure(ncols, nrows, width=3.4, height=2.9, sharey=True)
    for ax, arm in zip(axes.flat, arms, strict=False):
        sub = layers[layers["arm"] == arm]
        for stage, group in sub.groupby("stage"):
            width = max(map(len, group[column]))
            sv = np.array([np.pad(v, (0, width - len(v))) for v in group[column]])
            med = np.median(sv, axis=0)
            med = med[med > NUMERICAL_ZERO * med.max()] if med.max() > 0 else med[:0]
            ax.plot(np.arange(1, len(med) + 1), med, "o-", ms=3, label=f"after task {stage}")
        ax.set(yscale="log", xlabel="singular value #", title=arm)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    for ax in axes.flat[len(arms) :]:
        ax.set_visible(False)
    what = "ΔW" if column == "delta_sv" else "U"
    for row in axes:
        row[0].set_ylabel(f"σ of {what} (median over layers)")
    axes.flat[len(arms) - 1].legend(fontsize=8)
    set_caption(
        fig,
        f"{caption + '. ' if caption else ''}Values below {NUMERICAL_ZERO:g} of the largest "
        "are numerical zeros and not drawn.",
    )
    return fig


def change_by_layer(layers: pd.DataFrame, value: str = "delta_rel", caption: str = "") -> Figure:
    """A per-layer change measure (‖ΔW‖/‖W‖ or output shift) after the last task, per arm."""
    fig, axes = figure(1, 1, width=8)
    ax = axes[0, 0]
    last = layers[layers["stage"] == layers["stage"].max()]
    for arm, group in last.groupby("arm", sort=False):
        per_layer = group.groupby("layer", sort=False)[value].mean()
        ax.plot(
            np.arange(len(per_layer)), per_layer.values, "o-", ms=3, label=arm, color=arm_color(arm)
        )
    labels = {"delta_rel": "‖ΔW‖_F / ‖W‖_F", "output_shift": "‖x·ΔWᵀ‖ / ‖x·Wᵀ‖ on held-out text"}
    ax.set(
        yscale="log",
        xlabel="adapted layer (model order)",
        ylabel=labels.get(value, value),
        title=f"How much each arm changes each layer ({labels.get(value, value)})",
    )
    # Beside the axes: seven arms' lines fill the whole panel.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if caption:
        set_caption(fig, caption)
    return fig


def effective_step(layers: pd.DataFrame, caption: str = "") -> Figure:
    """Per arm: ‖ΔW‖_F and the output shift per unit of trainable update ‖θ − θ₀‖ (the scale
    C and R give an update), per layer after the last task."""
    last = effective_steps(layers)
    arms = list(dict.fromkeys(last["arm"]))
    fig, axes = figure(2, 1, width=5)
    for ax, value, label in zip(
        axes[0],
        ("weight_per_step", "shift_per_step"),
        ("‖ΔW‖_F / ‖θ − θ₀‖", "output shift / ‖θ − θ₀‖"),
        strict=True,
    ):
        for i, arm in enumerate(arms):
            v = last.loc[last["arm"] == arm, value].to_numpy()
            ax.scatter(
                i + np.linspace(-0.25, 0.25, len(v)), v, s=8, color=arm_color(arm), alpha=0.6
            )
            ax.plot([i - 0.3, i + 0.3], [np.median(v)] * 2, color="k", lw=1.5)
        ax.set(yscale="log", ylabel=label, xticks=range(len(arms)))
        ax.set_xticklabels(arms, rotation=30, ha="right", rotation_mode="anchor")
    axes[0, 0].set_title("Weight change per unit of update")
    axes[0, 1].set_title("Output change per unit of update")
    set_caption(fig, f"Points: adapted layers after the last task (bar: median). {caption}")
    return fig

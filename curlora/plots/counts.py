"""Notebook 03's figure: trainable parameters per model and method."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from curlora.methods import REGISTRY
from curlora.plots.style import FULL_COLOR, figure


def parameter_counts(table: pd.DataFrame, rank: int = 16) -> Figure:
    """Trainable parameters per model and method at ``rank`` (log scale, heads excluded)."""
    fig, axes = figure(1, 1, width=8)
    ax = axes[0, 0]
    sub = table[table["rank"] == rank]
    sns.barplot(
        sub,
        x="model",
        y="trainable",
        hue="method",
        palette={"full": FULL_COLOR, **{m: e.color for m, e in REGISTRY.items()}},
        ax=ax,
    )
    ax.set(
        yscale="log",
        ylabel="trainable parameters",
        xlabel="",
        title=f"Trainable parameters, Q/K/V at rank {rank} (heads excluded)",
    )
    ax.tick_params(axis="x", rotation=20)
    return fig

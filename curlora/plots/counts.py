"""Notebook 03's figure: trainable parameters per model and method."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from curlora.counting import WHOLE_MODEL
from curlora.methods import REGISTRY
from curlora.plots.style import WHOLE_MODEL_COLOR, figure


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
        palette={WHOLE_MODEL: WHOLE_MODEL_COLOR, **{m: e.color for m, e in REGISTRY.items()}},
        errorbar=None,
        ax=ax,
    )
    # Beside the bars, never over them.
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title="method", fontsize=8)
    ax.set(
        yscale="log",
        ylabel="trainable parameters",
        xlabel="",
        title=f"Trainable parameters, Q/K/V at rank {rank} (heads excluded)",
    )
    for label in ax.get_xticklabels():
        label.set(rotation=20, ha="right", rotation_mode="anchor")
    return fig

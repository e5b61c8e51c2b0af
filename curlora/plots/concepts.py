"""Notebook 00's figure: the same two arms read at one rate and along their frontiers."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from curlora.plots.style import figure


def frontier_schematic(table: pd.DataFrame) -> Figure:
    """Forgetting against learning rate (left) and against learning (right), per arm."""
    fig, axes = figure(ncols=2, width=4.6, height=3.4)
    x, y = "learning (points over the head alone)", "forgetting (%)"
    for (arm, rows), color in zip(table.groupby("arm"), ("C0", "C3"), strict=False):
        axes[0, 0].plot(rows["rate"], rows[y], "o-", color=color, label=f"arm {arm}")
        axes[0, 1].plot(rows[x], rows[y], "o-", color=color, label=f"arm {arm}")
    axes[0, 0].set(xscale="log", xlabel="learning rate", ylabel=y, title="At one rate")
    axes[0, 1].set(xlabel=x, ylabel=y, title="At the same learning (frontiers)")
    for ax in axes[0]:
        ax.legend(loc="upper left")
    fig.suptitle("Made-up numbers, to show the idea")
    return fig

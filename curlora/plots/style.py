"""The look every figure shares: the seaborn theme (set once, on import), one colour per arm, a
figure of the right size, the pooled-replicates label, and saving with identical bytes on re-run."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import matplotlib
import seaborn as sns
from matplotlib.figure import Figure

from curlora import cur
from curlora.arms import Arm
from curlora.methods import REGISTRY
from curlora.plots.lint import figure_problems
from curlora.study import Study

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "curlora"
#: The parameter-count figure's bar for the whole model (not an arm).
WHOLE_MODEL_COLOR = "0.6"


def figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kw):
    """A constrained-layout Figure and its grid of axes (always 2-D)."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def arm_color(arm: str) -> str:
    """An arm's colour, the same in every figure."""
    return Arm.parse(arm).color


def mode_color(mode: str) -> str | None:
    """A sampling rule's colour is its CURLoRA arm's; the SVD basis takes the SVD peer's."""
    if mode in cur.SAMPLING_RULES:
        return Arm("curlora", mode).color
    return REGISTRY[mode].color if mode in REGISTRY else None


class FigureDefect(UserWarning):
    """A saved figure shows a defect ``plots.lint`` detects (text off the canvas, say)."""


def wrapped(text: str, fig: Figure, fontsize: float = 9) -> str:
    """``text`` broken into lines that fit ``fig``'s width at ``fontsize``."""
    # An average glyph of the theme's sans-serif font is about 0.6 of its size wide.
    chars = int(fig.get_figwidth() * 72 / (0.6 * fontsize))
    return textwrap.fill(text, max(chars, 20))


def set_caption(fig: Figure, text: str, fontsize: float = 9) -> None:
    """Put ``text`` over ``fig`` as its title, wrapped to the figure's width."""
    fig.suptitle(wrapped(text, fig, fontsize), fontsize=fontsize)


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG without a software/date stamp (identical bytes on re-run); warn with
    ``FigureDefect`` about anything ``plots.lint`` finds."""
    for problem in figure_problems(fig):
        warnings.warn(f"{Path(path).name}: {problem}", FigureDefect, stacklevel=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return path


def pooled(study: Study) -> str:
    """'n = 3 seeds × 2 task orders (A → B → C and its reverse)': what a figure pools, its task
    orders named."""
    n, orders = len(study.seeds), study.orders
    seeds = f"n = {n} seed{'s' * (n != 1)}"
    if len(orders) == 1:
        return f"{seeds}, {order_label(orders[0])}"
    first = orders[0]
    if len(orders) == 2 and orders[1] == tuple(reversed(first)):
        named = f"{' → '.join(first)} and its reverse"
    elif len(orders) == math.factorial(len(first)):
        named = f"every order of {', '.join(sorted(first))}"
    else:
        named = "; ".join(" → ".join(o) for o in orders)
    return f"{seeds} × {len(orders)} task orders ({named})"


def order_label(order: tuple[str, ...] | list[str]) -> str:
    """'task order wiki-pairs → movie-snippets': the one order a figure shows."""
    return "task order " + " → ".join(order)

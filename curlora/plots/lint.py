"""Defects a reader sees before a reviewer does: text cut at the canvas edge, a legend entry with
nothing drawn, a band outside the range its variable can take, a legend naming one thing twice."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.text import Text

#: The attribute ``bounded`` sets on an axes: the range its y variable can take.
_RANGE = "_curlora_value_range"


def bounded(ax: Axes, low: float, high: float) -> None:
    """Declare that ``ax``'s y variable lies in [low, high] (an accuracy in [0, 1]), so bands drawn
    on it are checked against that range."""
    setattr(ax, _RANGE, (low, high))


def figure_problems(fig: Figure) -> list[str]:
    """Every defect ``fig`` shows, one sentence each; an empty list for a figure that reads."""
    # A figure made without pyplot has no renderer until it is given a canvas to draw on.
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    problems = _cut_text(fig, renderer)
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        problems += _empty_series(ax) + _bands_out_of_range(ax)
    for legend in [ax.get_legend() for ax in fig.axes] + list(fig.legends):
        if legend is not None:
            problems += _duplicate_entries(legend)
    return problems


def _cut_text(fig: Figure, renderer) -> list[str]:
    """Text whose extent leaves the canvas (a title cut at both ends, a label spilling out)."""
    parts = [(fig._suptitle, "the figure title"), *((t, "a figure text") for t in fig.texts)]
    parts += [(legend, "a figure legend") for legend in fig.legends]
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        where = f"panel {ax.get_title()!r}"
        parts += [(ax.xaxis, f"{where}: x axis"), (ax.yaxis, f"{where}: y axis")]
        parts += [(ax.title, f"{where}: title"), (ax.get_legend(), f"{where}: legend")]
        parts += [(t, f"{where}: a label") for t in ax.texts]
    canvas = fig.bbox
    cut = []
    for artist, name in parts:
        if artist is None or not artist.get_visible():
            continue
        if isinstance(artist, Text) and not artist.get_text().strip():
            continue
        # An axis's tight box holds only the tick labels drawn, and the axis label.
        box = artist.get_tightbbox(renderer)
        if box is None:
            continue
        if (
            box.x0 < canvas.x0 - 1
            or box.x1 > canvas.x1 + 1
            or box.y0 < canvas.y0 - 1
            or box.y1 > canvas.y1 + 1
        ):
            text = f" {artist.get_text()[:50]!r}" if isinstance(artist, Text) else ""
            cut.append(f"{name}{text} runs off the canvas")
    return cut


def _empty_series(ax: Axes) -> list[str]:
    """Series with a legend label but no finite point (a 'matched' series of NaN)."""
    empty = []
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if len(x) and not np.isfinite(x + y).any():
            empty.append(f"series {line.get_label()!r} in {ax.get_title()!r} has no finite point")
    for collection in ax.collections:
        label = collection.get_label()
        if label.startswith("_") or isinstance(collection, PolyCollection):
            continue
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if not np.isfinite(offsets).all(axis=-1).any():
            empty.append(f"series {label!r} in {ax.get_title()!r} has no finite point")
    return empty


def _bands_out_of_range(ax: Axes) -> list[str]:
    """Shaded bands reaching outside the declared range, or to zero or below on a log axis."""
    low, high = getattr(ax, _RANGE, (-np.inf, np.inf))
    if ax.get_yscale() == "log":
        low = max(low, np.finfo(float).tiny)
    out = []
    for band in ax.collections:
        if not isinstance(band, PolyCollection):
            continue
        ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()] or [np.empty(0)])
        ys = ys[np.isfinite(ys)]
        if len(ys) and (ys.min() < low or ys.max() > high):
            out.append(
                f"a band in {ax.get_title()!r} spans {ys.min():.3g}…{ys.max():.3g}, "
                f"outside its variable's range [{low:.3g}, {high:.3g}]"
            )
    return out


def _duplicate_entries(legend) -> list[str]:
    """Legend labels shown more than once."""
    labels = [t.get_text() for t in legend.get_texts()]
    return [
        f"legend names {label!r} twice"
        for label in sorted({x for x in labels if labels.count(x) > 1})
    ]

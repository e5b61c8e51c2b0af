"""One function per figure; each returns a matplotlib Figure (so tests and notebooks call the same code).

Figures are grouped by the notebook that draws them (``concepts``: 00, ``cur_sampling``: 01, ``updates``: 02,
``counts``: 03, ``forgetting``: 04 and 05, ``continued``: 06) and share one look (``style``: the seaborn theme set
once, one colour per arm, ``save`` with identical bytes on re-run). Every result figure says how
many seeds (and task orders) it pools and where chance lies, in its title or legend.
"""

from __future__ import annotations

from curlora.plots.concepts import frontier_schematic
from curlora.plots.continued import domain_frontiers, domain_losses
from curlora.plots.counts import parameter_counts
from curlora.plots.cur_sampling import (
    distance_from_uniform,
    leverage_vs_norm,
    norm_distributions,
    picked_columns,
    picked_energy,
    reconstruction_error,
    selection_probabilities,
    selection_statistics,
)
from curlora.plots.forgetting import (
    accuracy_heatmaps,
    frontiers,
    matched_vs_same_rate,
    perplexity_trajectory,
    task_accuracy_curves,
)
from curlora.plots.style import save
from curlora.plots.updates import change_by_layer, delta_spectra, effective_step

__all__ = [
    "accuracy_heatmaps",
    "change_by_layer",
    "delta_spectra",
    "distance_from_uniform",
    "domain_frontiers",
    "domain_losses",
    "effective_step",
    "frontier_schematic",
    "frontiers",
    "leverage_vs_norm",
    "matched_vs_same_rate",
    "norm_distributions",
    "parameter_counts",
    "perplexity_trajectory",
    "picked_columns",
    "picked_energy",
    "reconstruction_error",
    "save",
    "selection_probabilities",
    "selection_statistics",
    "task_accuracy_curves",
]

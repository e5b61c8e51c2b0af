"""The look every figure shares: the seaborn theme (set once, on import), one colour per arm, a
figure of the right size, the pooled-replicates label, and saving with identical bytes on re-run."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import seaborn as sns
from matplotlib.figure import Figure

from curlora import cur
from curlora.arms import Arm
from curlora.methods import REGISTRY
from curlora.study import Study

sns.set_theme(style="whitegrid", context="notebook")
matplotlib.rcParams["svg.hashsalt"] = "curlora"
#: The parameter-count figure's bar for full fine-tuning (not an arm).
FULL_COLOR = "C4"


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


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG without a software/date stamp (identical bytes on re-run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    return path


def pooled(study: Study) -> str:
    """'n = 3 seeds × 6 task orders': what a figure pools."""
    n, k = len(study.seeds), len(study.orders)
    return f"n = {n} seed{'s' * (n != 1)}" + (f" × {k} task orders" if k > 1 else "")

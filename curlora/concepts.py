"""The ideas notebook 00 teaches, each as a small computation: CUR by hand, one layer's shapes
and counts, Adam's step size, and why methods are compared on learning-rate frontiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from curlora import cur
from curlora.counting import meta_model
from curlora.methods import REGISTRY
from curlora.targets import resolve_targets, weight_matrix

#: A 4 × 4 weight small enough to follow by hand: column and row norms differ clearly.
TOY_W = torch.tensor(
    [
        [2.0, 0.5, 1.0, 0.1],
        [1.5, 0.2, 0.8, 0.3],
        [3.0, 0.4, 0.5, 0.2],
        [0.5, 0.1, 1.2, 0.4],
    ]
)


@dataclass(frozen=True)
class CurByHand:
    """Every step of CUR sampling on one weight."""

    W: torch.Tensor
    steps: pd.DataFrame  # per column: squared norm, p (eq. 3), inverted p̃ (eq. 4)
    columns: list[int]  # the picked columns (with replacement)
    rows: list[int]
    C: torch.Tensor
    U: torch.Tensor
    R: torch.Tensor


def cur_by_hand(W: torch.Tensor = TOY_W, rank: int = 2, seed: int = 0) -> CurByHand:
    """Norms → p → inverted p̃ → sampled columns and rows → C, R (frozen) and U = 0 (trains)."""
    sq = cur.squared_norms(W, "columns")
    steps = pd.DataFrame(
        {
            "‖W[:, j]‖²": sq.numpy(),
            "p_j (eq. 3)": cur.selection_probabilities(W, "columns", "norm").numpy(),
            "p̃_j ∝ 1/p_j (eq. 4)": cur.selection_probabilities(W, "columns", "inverse").numpy(),
        },
        index=pd.RangeIndex(W.shape[1], name="column j"),
    )
    C, R, cols, rows = cur.cur_factors(W, rank, "inverse", torch.Generator().manual_seed(seed))
    return CurByHand(W, steps, cols.tolist(), rows.tolist(), C, torch.zeros(rank, rank), R)


def layer_counts(model: str, layer: str, rank: int, methods: tuple[str, ...]) -> pd.DataFrame:
    """One real layer's shape (from the model's config alone) and each method's trainable count."""
    lm = meta_model(model)
    name = next(n for n in resolve_targets(lm, None) if n.endswith(layer))
    out_f, in_f = weight_matrix(lm.get_submodule(name)).shape
    return pd.DataFrame(
        [
            {
                "method": REGISTRY[m].display,
                "layer": name,
                "out × in": f"{out_f} × {in_f}",
                "trainable": REGISTRY[m].trainable(out_f, in_f, rank, 1),
                "share of W": REGISTRY[m].trainable(out_f, in_f, rank, 1) / (out_f * in_f),
            }
            for m in methods
        ]
    ).set_index("method")


def adam_step_sizes(lr: float, scales: tuple[float, ...], seed: int = 0) -> pd.DataFrame:
    """The size of Adam's first step on one tensor whose gradient is scaled by each of ``scales``:
    about ``lr`` per entry whatever the scale, since Adam divides by the gradient's own size."""
    g = torch.randn(1000, generator=torch.Generator().manual_seed(seed))
    rows = []
    for scale in scales:
        p = torch.nn.Parameter(torch.zeros(1000))
        opt = torch.optim.Adam([p], lr=lr)
        p.grad = scale * g
        opt.step()
        rows.append(
            {"gradient scale": scale, "mean |step| per entry": float(p.detach().abs().mean())}
        )
    return pd.DataFrame(rows).set_index("gradient scale")


def schematic_frontiers(seed: int = 0) -> pd.DataFrame:
    """Two made-up arms at four rates: 'A' takes larger steps per rate (it learns and forgets
    more at each rate) but forgets less at the same learning — what one rate would hide."""
    rng = np.random.default_rng(seed)
    rates = [1e-4, 3e-4, 1e-3, 3e-3]
    rows = []
    for arm, learning, forgetting in (
        ("A", [2.0, 4.5, 7.0, 8.0], 0.6),
        ("B", [0.8, 2.0, 4.0, 6.5], 1.0),
    ):
        for lr, x in zip(rates, learning, strict=True):
            rows.append(
                {
                    "arm": arm,
                    "rate": lr,
                    "learning (points over the head alone)": x,
                    "forgetting (%)": forgetting * x + rng.normal(0, 0.05),
                }
            )
    return pd.DataFrame(rows)

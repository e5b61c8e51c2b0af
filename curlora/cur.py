"""The CUR math of CURLoRA: selection probabilities, index selection and classical CUR.

Conventions. ``W`` is a 2-D weight in PyTorch's ``nn.Linear`` layout (out × in). ``axis``
names the dimension whose indices are chosen: ``"columns"`` (or 1) gives one probability per
column, ``"rows"`` (or 0) one per row. The paper writes ``y = xW`` (W in × out), so its
"columns" are our rows; because CURLoRA samples both and forms ``C·U·R`` either way, the two
readings describe the same family of adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: The constant the reference implementation adds before inverting.
REFERENCE_EPS = 1e-3


@dataclass(frozen=True)
class SamplingRule:
    """One way to choose CUR's columns and rows, and how figures name and colour it."""

    name: str
    label: str
    color: str
    #: (norm shares p, mask of non-zero ones) → unnormalised selection weights; for a sampled rule.
    weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    #: (W, axis, k) → k indices; for a deterministic rule.
    pick: Callable[[torch.Tensor, str | int, int], torch.Tensor] | None = None


def _inverse(p: torch.Tensor, nonzero: torch.Tensor) -> torch.Tensor:
    return torch.where(nonzero, 1.0 / torch.where(nonzero, p, 1.0), 0.0)


#: Every rule: paper eq. 3–4 exactly, the reference code's ``1/(p + 0.001)``, classical
#: Drineas–Mahoney (∝ squared norm), uniform, and the deterministic ``lowest`` ablation (the k
#: smallest-norm columns/rows). A new rule is one entry here.
SAMPLING_RULES: dict[str, SamplingRule] = {
    r.name: r
    for r in (
        SamplingRule("inverse", "eq. 4", "C0", weights=_inverse),
        SamplingRule(
            "inverse_eps",
            "inverse_eps",
            "C9",
            weights=lambda p, nonzero: torch.where(nonzero, 1.0 / (p + REFERENCE_EPS), 0.0),
        ),
        SamplingRule("norm", "norm", "C8", weights=lambda p, nonzero: p),
        # Uniform gives zero-norm columns their share too: it does not look at the weights.
        SamplingRule("uniform", "uniform", "C5", weights=lambda p, nonzero: torch.ones_like(p)),
        SamplingRule("lowest", "lowest", "C4", pick=lambda W, axis, k: lowest_indices(W, axis, k)),
    )
}
#: The shipped rules that sample by probability, and all shipped rules, in registry order.
PROBABILITY_MODES = tuple(n for n, r in SAMPLING_RULES.items() if r.weights is not None)
SAMPLING_MODES = tuple(SAMPLING_RULES)

_AXES = {"columns": 1, "cols": 1, 1: 1, "rows": 0, 0: 0}


def _dim(axis: str | int) -> int:
    if axis not in _AXES:
        raise ValueError(f"axis={axis!r} is not understood; expected 'columns' (1) or 'rows' (0).")
    return _AXES[axis]


def check_mode(mode: str, allowed: tuple[str, ...] | None = None) -> str:
    """Return ``mode`` if it is one of ``allowed`` (default: every registered rule), else raise a
    ValueError listing them."""
    allowed = tuple(SAMPLING_RULES) if allowed is None else allowed
    if mode not in allowed:
        raise ValueError(f"Unknown sampling mode {mode!r}; choose one of {', '.join(allowed)}.")
    return mode


def check_weight(W: torch.Tensor) -> torch.Tensor:
    """Return ``W`` if it is a finite, non-zero 2-D matrix, else raise a helpful ValueError."""
    if W.ndim != 2:
        raise ValueError(f"Expected a 2-D weight matrix, got shape {tuple(W.shape)}.")
    if not torch.isfinite(W).all():
        bad = int((~torch.isfinite(W)).sum())
        raise ValueError(
            f"The weight of shape {tuple(W.shape)} holds {bad} NaN/Inf entries; CUR selection "
            "probabilities are undefined. Check the checkpoint or the dtype it was loaded in."
        )
    if not W.any():
        raise ValueError(
            f"The weight of shape {tuple(W.shape)} is all zeros, so every selection probability "
            "is undefined. Adapt a layer with trained weights (or use sampling='uniform')."
        )
    return W


def squared_norms(W: torch.Tensor, axis: str | int) -> torch.Tensor:
    """Squared L2 norm of each column (axis='columns') or row (axis='rows') of W, in float64."""
    dim = _dim(axis)
    return W.detach().double().pow(2).sum(dim=1 - dim)


def selection_probabilities(
    W: torch.Tensor, axis: str | int, mode: str = "inverse"
) -> torch.Tensor:
    """Probability of picking each column/row of W under ``mode``; float64, sums to 1.

    ``norm``: p_j = ‖W[:, j]‖² / ‖W‖_F² (paper eq. 3). ``inverse``: p̃_j ∝ 1/p_j (eq. 4).
    ``inverse_eps``: ∝ 1/(p_j + 0.001), what the reference code computes. ``uniform``: 1/n.
    Zero-norm columns/rows get probability 0 in every mode but ``uniform``: they carry no
    information, and 1/0 would otherwise give them all the mass.
    """
    check_mode(mode, tuple(n for n, r in SAMPLING_RULES.items() if r.weights is not None))
    check_weight(W)
    sq = squared_norms(W, axis)
    p = sq / sq.sum()
    weights = SAMPLING_RULES[mode].weights(p, p > 0)
    return weights / weights.sum()


def sample_indices(
    probs: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    replace: bool = True,
) -> torch.Tensor:
    """Draw k indices from the distribution ``probs`` (with replacement by default, as the paper)."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    n_support = int((probs > 0).sum())
    if not replace and k > n_support:
        raise ValueError(
            f"Cannot draw {k} distinct indices from {n_support} with non-zero probability; "
            "lower k or pass replace=True."
        )
    # Drawing on the CPU makes a seed give the same picks whatever device W lives on.
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("Pass a CPU torch.Generator: indices are always drawn on the CPU.")
    return torch.multinomial(
        probs.detach().cpu().double(), k, replacement=replace, generator=generator
    )


def lowest_indices(W: torch.Tensor, axis: str | int, k: int) -> torch.Tensor:
    """The k columns/rows of W with the smallest norms (ties broken by position)."""
    sq = squared_norms(W, axis).cpu()
    if k > sq.numel():
        raise ValueError(f"k={k} exceeds the {sq.numel()} {axis} available.")
    return torch.sort(sq, stable=True).indices[:k]


def select_indices(
    W: torch.Tensor,
    axis: str | int,
    k: int,
    mode: str = "inverse",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Choose k column/row indices of W by ``mode`` (sampled, or deterministic for 'lowest')."""
    rule = SAMPLING_RULES[check_mode(mode)]
    if rule.pick is not None:
        check_weight(W)
        return rule.pick(W, axis, k)
    return sample_indices(selection_probabilities(W, axis, mode), k, generator)


def cur_factors(
    W: torch.Tensor,
    rank: int,
    mode: str = "inverse",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick ``rank`` columns and rows of W: returns (C, R, col_idx, row_idx), C = W[:, col_idx]."""
    col_idx = select_indices(W, "columns", rank, mode, generator)
    row_idx = select_indices(W, "rows", rank, mode, generator)
    return W[:, col_idx.to(W.device)], W[row_idx.to(W.device), :], col_idx, row_idx


def classical_cur(
    W: torch.Tensor,
    rank: int,
    mode: str = "norm",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Classical CUR of W: (C, U, R) with the optimal core U = C⁺ W R⁺ (Mahoney & Drineas 2009)."""
    C, R, _, _ = cur_factors(W, rank, mode, generator)
    Wd, Cd, Rd = W.double(), C.double(), R.double()
    U = torch.linalg.pinv(Cd) @ Wd @ torch.linalg.pinv(Rd)
    return Cd, U, Rd


def reconstruction_error(
    W: torch.Tensor,
    rank: int,
    mode: str = "norm",
    generator: torch.Generator | None = None,
) -> float:
    """Relative Frobenius error ‖W − C U R‖ / ‖W‖ of the classical CUR of W at ``rank``."""
    C, U, R = classical_cur(W, rank, mode, generator)
    Wd = W.double()
    return float(torch.linalg.matrix_norm(Wd - C @ U @ R) / torch.linalg.matrix_norm(Wd))


def total_variation_from_uniform(probs: torch.Tensor) -> float:
    """Total-variation distance between ``probs`` and the uniform distribution (0 = uniform)."""
    return float(0.5 * (probs.double() - 1.0 / probs.numel()).abs().sum())

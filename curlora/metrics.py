"""Continual-learning metrics from an accuracy matrix: ACC, BWT, Forgetting.

Definitions as in ``docs/metrics.md``: R[i][j] is accuracy on task j after training through
task i (NaN where task j has no head yet).
"""

from __future__ import annotations

import math

import numpy as np


def _matrix(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"Expected a square T×T accuracy matrix, got shape {R.shape}.")
    return R


def average_accuracy(R) -> float:
    """ACC = (1/T) Σ_j R[T][j]: mean accuracy over all tasks after the last one."""
    R = _matrix(R)
    return float(R[-1].mean())


def backward_transfer(R) -> float:
    """BWT = (1/(T−1)) Σ_{j<T} (R[T][j] − R[j][j]) (Lopez-Paz & Ranzato 2017); negative = forgetting.

    Averages over the T−1 earlier tasks (GEM's released code divides by T with a zero term).
    NaN for a single task.
    """
    R = _matrix(R)
    T = len(R)
    if T < 2:
        return math.nan
    return float(np.mean([R[-1, j] - R[j, j] for j in range(T - 1)]))


def forgetting(R) -> float:
    """Forgetting = mean over j<T of max_{l<T} R[l][j] − R[T][j] (Chaudhry et al. 2018, A-GEM)."""
    R = _matrix(R)
    T = len(R)
    if T < 2:
        return math.nan
    return float(np.mean([np.nanmax(R[j : T - 1, j]) - R[-1, j] for j in range(T - 1)]))

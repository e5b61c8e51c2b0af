"""What CUR sampling picks from real weights: how far each rule is from uniform, what the picked
columns carry, statistical leverage, duplicates, conditioning, and classical-CUR reconstruction.

The numbers notebook 01 plots; every function takes a seed or seeds for its random draws.
"""

from __future__ import annotations

import torch
from torch import nn

from curlora import cur
from curlora.targets import resolve_targets, weight_matrix


def uniformity_vs_width(
    widths: list[int], modes: tuple[str, ...], rows: int = 64, spread: float = 1.0, seed: int = 0
) -> list[dict]:
    """Total-variation distance from uniform of each mode's column probabilities, for matrices
    of growing width whose column norms vary log-normally (σ = ``spread``)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in widths:
        scales = torch.exp(spread * torch.randn(n, generator=g))
        W = torch.randn(rows, n, generator=g) * scales
        for mode in modes:
            p = cur.selection_probabilities(W, "columns", mode)
            out.append(
                {"width": n, "mode": mode, "tv_from_uniform": cur.total_variation_from_uniform(p)}
            )
    return out


def picked_energy_share(
    W: torch.Tensor, rank: int, modes: tuple[str, ...], seeds: list[int], axis: str = "columns"
) -> list[dict]:
    """Share of ‖W‖_F² carried by the distinct columns (or rows) each mode picks, per seed."""
    sq = cur.squared_norms(W, axis)
    out = []
    for mode in modes:
        for seed in seeds:
            idx = cur.select_indices(
                W, axis, rank, mode, torch.Generator().manual_seed(seed)
            ).unique()
            out.append(
                {
                    "mode": mode,
                    "seed": seed,
                    "share": float(sq[idx].sum() / sq.sum()),
                    "distinct": len(idx),
                }
            )
    return out


def named_weights(
    model: nn.Module, targets: list[str] | str, layers: list[int] | None = None
) -> dict[str, torch.Tensor]:
    """Out × in weights of the modules ``targets`` names (suffixes or a regex), detached;
    ``layers`` keeps only those whose name has one of these block numbers (``.N.``)."""
    modules = dict(model.named_modules())
    names = resolve_targets(model, targets)
    if layers is not None:
        wanted = {str(i) for i in layers}
        names = [n for n in names if wanted & set(n.split("."))]
        if not names:
            raise ValueError(
                f"No {targets} module in layers {layers}; the model has {len(resolve_targets(model, targets))} such modules."
            )
    return {n: weight_matrix(modules[n]).detach() for n in names}


def reconstruction_table(
    W: torch.Tensor, ranks: list[int], modes: tuple[str, ...], seeds: list[int]
) -> list[dict]:
    """Classical CUR (C⁺WR⁺) relative error for each rank, mode and seed."""
    return [
        {
            "rank": r,
            "mode": m,
            "seed": s,
            "error": cur.reconstruction_error(W, r, m, torch.Generator().manual_seed(s)),
        }
        for r in ranks
        for m in modes
        for s in seeds
    ]


def leverage_scores(W: torch.Tensor, k: int, axis: str = "columns") -> torch.Tensor:
    """Statistical leverage of each column (row) relative to the best rank-k subspace, summing to 1.

    Mahoney & Drineas (PNAS 2009): π_j = (1/k) Σ_{ξ≤k} (v_j^ξ)², with v^ξ the ξ-th right singular
    vector (left, for rows). The paper calls the squared-norm share p_j "leverage"; it is the
    k = full-rank limit weighted by singular values, not this quantity.
    """
    u, _, vh = torch.linalg.svd(W.detach().double(), full_matrices=False)
    vectors = vh[:k] if axis == "columns" else u[:, :k].T
    return vectors.pow(2).sum(0) / k


def selection_statistics(
    W: torch.Tensor, rank: int, modes: tuple[str, ...], seeds: list[int]
) -> list[dict]:
    """Per mode and seed: duplicates among the r picks (with replacement), the rank of C and R,
    their norms relative to ‖W‖_F·√(r/n) (what r average columns would have), and the
    condition number of their distinct columns/rows."""
    Wd = W.detach().double()
    out = []
    for mode in modes:
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            C, R, cols, rows = cur.cur_factors(Wd, rank, mode, g)
            row = {"mode": mode, "seed": seed, "rank": rank}
            for name, M, idx, n in (("C", C, cols, W.shape[1]), ("R", R.T, rows, W.shape[0])):
                picks = idx.tolist()
                first = [i for i, v in enumerate(picks) if v not in picks[:i]]
                s = torch.linalg.svdvals(M[:, first])
                row[f"{name}_duplicates"] = 1 - len(first) / rank
                row[f"{name}_rank"] = int(torch.linalg.matrix_rank(M))
                row[f"{name}_norm"] = float(M.norm() / (Wd.norm() * (rank / n) ** 0.5))
                row[f"{name}_cond"] = float(s[0] / s[-1])
            out.append(row)
    return out


def svd_error(W: torch.Tensor, ranks: list[int]) -> list[dict]:
    """Relative Frobenius error of the best rank-k approximation (Eckart–Young), per k."""
    s = torch.linalg.svdvals(W.detach().double())
    total = s.pow(2).sum()
    return [{"rank": k, "error": float((s[k:].pow(2).sum() / total).sqrt())} for k in ranks]


def rank_agreement(W: torch.Tensor, k: int, axis: str = "columns") -> float:
    """Spearman's rank correlation between the columns' (rows') norm shares and their top-k
    statistical leverage scores."""
    from scipy.stats import spearmanr

    share = cur.selection_probabilities(W, axis, "norm").numpy()
    return float(spearmanr(share, leverage_scores(W, k, axis).numpy()).statistic)

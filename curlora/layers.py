"""Adapter layers: a frozen base layer plus alpha·C·U·R with frozen C, R and a trainable r×r U.

One small base class does the math (factored forward, ``delta_weight``, ``merge``/``unmerge``);
thin subclasses choose the frozen factors: ``CURLoRALinear`` takes actual columns and rows of
the weight (Fawi 2024), ``SVDPeerLinear`` takes truncated-SVD factors (the LoRA-XS recipe of
Bałazy et al. 2024), the r×r control with the same trainable budget.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.cur import check_mode, check_weight, select_indices

#: Layer types an adapter can wrap: PyTorch Linear (out × in) and GPT-2's Conv1D (in × out).
SUPPORTED_LAYERS = (nn.Linear, Conv1D)


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as an out × in view (transposed for GPT-2 Conv1D, whose weight is in × out)."""
    if isinstance(layer, Conv1D):
        return layer.weight.T
    if isinstance(layer, nn.Linear):
        return layer.weight
    raise TypeError(
        f"Cannot adapt a {type(layer).__name__}: only torch.nn.Linear and transformers' "
        "Conv1D are supported. Choose target modules of those types."
    )


def check_rank(rank: object, out_features: int, in_features: int, where: str = "") -> int:
    """Return ``rank`` if it is a positive int no larger than min(out, in), else raise."""
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be a positive int, got {rank!r} ({type(rank).__name__}).")
    limit = min(out_features, in_features)
    if not 1 <= rank <= limit:
        raise ValueError(
            f"rank={rank} is out of range{where}: a {out_features}×{in_features} weight allows "
            f"1 ≤ rank ≤ {limit}. Lower the rank or choose larger target layers."
        )
    return rank


def check_alpha(alpha: object) -> float:
    """Return ``alpha`` as a float if it is a finite real number, else raise."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}.")
    return float(alpha)


class FactoredAdapter(nn.Module):
    """``base(x) + alpha · x (C U R)ᵀ`` with C, R frozen buffers and U the only trainable tensor.

    With ``split=k`` the output dimension is cut into k equal blocks (e.g. a fused Q/K/V
    projection), each with its own C, U, R; tensors then carry a leading block dimension.
    """

    method = "factored"

    def __init__(self, base: nn.Module, rank: int, alpha: float = 1.0, split: int = 1):
        super().__init__()
        W = weight_matrix(base)
        if isinstance(split, bool) or not isinstance(split, int) or split < 1:
            raise ValueError(f"split must be a positive int, got {split!r}.")
        if W.shape[0] % split:
            raise ValueError(
                f"split={split} does not divide the {W.shape[0]} output features of this layer."
            )
        self.rank = check_rank(rank, W.shape[0] // split, W.shape[1])
        self.alpha = check_alpha(alpha)
        self.split = split
        self.base = base
        self.base.requires_grad_(False)
        self.merged = False

    def _set_factors(self, C: list[torch.Tensor], R: list[torch.Tensor]) -> None:
        """Register per-block factors as buffers and create the zero-initialised U."""
        W = weight_matrix(self.base)
        one = self.split == 1
        self.register_buffer("C", (C[0] if one else torch.stack(C)).detach().clone())
        self.register_buffer("R", (R[0] if one else torch.stack(R)).detach().clone())
        shape = (self.rank, self.rank) if one else (self.split, self.rank, self.rank)
        self.U = nn.Parameter(torch.zeros(shape, dtype=W.dtype, device=W.device))

    @property
    def in_features(self) -> int:
        return weight_matrix(self.base).shape[1]

    @property
    def out_features(self) -> int:
        return weight_matrix(self.base).shape[0]

    def delta_weight(self) -> torch.Tensor:
        """The update alpha · C U R as an out × in matrix (what ``merge`` adds to the weight)."""
        if self.split == 1:
            return self.alpha * (self.C @ self.U @ self.R)
        return self.alpha * torch.einsum("kor,krs,ksi->koi", self.C, self.U, self.R).flatten(0, 1)

    def add_update(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out`` plus alpha · x (C U R)ᵀ in factored form: never builds the out × in matrix."""
        # alpha scales the r×r core rather than the output, and the last product accumulates
        # into ``out`` inside the GEMM (addmm, beta = 1): no elementwise pass over out-sized
        # activations, forward or backward. Those passes were most of the adapter's own cost
        # on CPU (benchmarks/NOTES.md).
        U = self.U if self.alpha == 1 else self.alpha * self.U
        if self.split == 1:
            # F.linear(x, M) = x Mᵀ, so h = (x Rᵀ) Uᵀ: O(r·(in + r + out)) per token in all.
            h = F.linear(F.linear(x, self.R), U)
            flat = torch.addmm(out.reshape(-1, out.shape[-1]), h.reshape(-1, self.rank), self.C.t())
            return flat.view(out.shape)
        h = torch.einsum("...i,kri->...kr", x, self.R)
        h = torch.einsum("...kr,ksr->...ks", h, U)
        return out + torch.einsum("...ks,kos->...ko", h, self.C).flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out if self.merged else self.add_update(out, x)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the base weight, so inference costs exactly the base layer."""
        if self.merged:
            raise RuntimeError("This adapter is already merged; call unmerge() first.")
        W = weight_matrix(self.base)
        W += self.delta_weight().to(W.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again, restoring the base weight (up to floating-point rounding)."""
        if not self.merged:
            raise RuntimeError("This adapter is not merged; nothing to unmerge.")
        W = weight_matrix(self.base)
        W -= self.delta_weight().to(W.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, rank={self.rank}, "
            f"alpha={self.alpha}, split={self.split}, merged={self.merged}"
        )


class CURLoRALinear(FactoredAdapter):
    """CURLoRA (Fawi 2024): C = W[:, cols], R = W[rows, :] sampled once, U (r×r) starts at zero.

    ``col_idx``/``row_idx`` rebuild a saved adapter without sampling. Wraps ``nn.Linear`` or
    GPT-2 ``Conv1D``; orientation is handled through the out × in view of the weight.
    """

    method = "curlora"

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        alpha: float = 1.0,
        sampling: str = "inverse",
        generator: torch.Generator | None = None,
        split: int = 1,
        col_idx: torch.Tensor | None = None,
        row_idx: torch.Tensor | None = None,
    ):
        super().__init__(base, rank, alpha, split)
        self.sampling = check_mode(sampling)
        blocks = weight_matrix(base).detach().chunk(split, dim=0)
        if col_idx is None or row_idx is None:
            for block in blocks:
                check_weight(block)
            col_idx = torch.stack(
                [select_indices(b, "columns", rank, sampling, generator) for b in blocks]
            )
            row_idx = torch.stack(
                [select_indices(b, "rows", rank, sampling, generator) for b in blocks]
            )
        else:
            col_idx = torch.as_tensor(col_idx, dtype=torch.long).reshape(split, rank)
            row_idx = torch.as_tensor(row_idx, dtype=torch.long).reshape(split, rank)
        dev = blocks[0].device
        C = [b[:, c.to(dev)] for b, c in zip(blocks, col_idx, strict=True)]
        R = [b[r.to(dev), :] for b, r in zip(blocks, row_idx, strict=True)]
        self._set_factors(C, R)
        squeeze = (lambda t: t[0]) if split == 1 else (lambda t: t)
        self.register_buffer("col_idx", squeeze(col_idx).to(dev))
        self.register_buffer("row_idx", squeeze(row_idx).to(dev))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sampling={self.sampling!r}"


class SVDPeerLinear(FactoredAdapter):
    """The r×r SVD peer (LoRA-XS recipe): C = U_r·Σ_r and R = V_rᵀ from W's truncated SVD, frozen.

    Only the r×r core trains, initialised at zero like CURLoRA's U, so both start as the base
    model and have the same r² trainable parameters; they differ only in the frozen factors.
    """

    method = "svd"

    def __init__(self, base: nn.Module, rank: int, alpha: float = 1.0, split: int = 1):
        super().__init__(base, rank, alpha, split)
        W = weight_matrix(base).detach()
        C, R = [], []
        for block in W.chunk(split, dim=0):
            check_weight(block)
            u, s, vh = torch.linalg.svd(block.double(), full_matrices=False)
            C.append((u[:, :rank] * s[:rank]).to(W.dtype))
            R.append(vh[:rank].to(W.dtype))
        self._set_factors(C, R)

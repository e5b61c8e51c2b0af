"""How much an adapter changes the model: ‖ΔW‖/‖W‖, U spectra, output shift — numbers to plot."""

from __future__ import annotations

import torch
from torch import nn

from curlora.inject import adapter_layers
from curlora.layers import FactoredAdapter, weight_matrix


def delta_factors(layer: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """ΔW of an adapted layer as (left, core, right) per output block, ΔW_b = left·core·right.

    CURLoRA / SVD peer: (alpha·C, U, R). PEFT LoRA: (scaling·B, I, A). Working with the thin
    factors gives exact norms and singular values without forming the out × in matrix.
    """
    if isinstance(layer, FactoredAdapter):
        C, U, R = (
            (layer.C, layer.U, layer.R)
            if layer.split > 1
            else (layer.C[None], layer.U[None], layer.R[None])
        )
        return [(layer.alpha * c, u, r) for c, u, r in zip(C, U, R, strict=True)]
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    return [(layer.scaling["default"] * B, eye, A)]


@torch.no_grad()
def delta_singular_values(layer: nn.Module) -> torch.Tensor:
    """Singular values of ΔW (descending), from thin QRs; for a split layer, each block's, pooled."""
    values = []
    for left, core, right in delta_factors(layer):
        q1, r1 = torch.linalg.qr(left.double())
        q2, r2 = torch.linalg.qr(right.double().T)
        # ΔW = q1 (r1 · core · r2ᵀ) q2ᵀ with orthonormal q1, q2: same singular values as the core.
        values.append(torch.linalg.svdvals(r1 @ core.double() @ r2.T))
    return torch.sort(torch.cat(values), descending=True).values


@torch.no_grad()
def layer_stats(model: nn.Module) -> list[dict]:
    """Per adapted layer: ‖W‖_F, ‖ΔW‖_F, their ratio, ‖trainable‖_F, and the spectra of ΔW and U."""
    rows = []
    for name, layer in adapter_layers(model):
        base = layer.base if isinstance(layer, FactoredAdapter) else layer.get_base_layer()
        w_norm = float(torch.linalg.matrix_norm(weight_matrix(base).double()))
        sv = delta_singular_values(layer)
        d_norm = float(sv.norm())
        if isinstance(layer, FactoredAdapter):
            trainable = [layer.U]
            u_sv = torch.linalg.svdvals(layer.U.double()).flatten().tolist()
        else:
            trainable = [layer.lora_A["default"].weight, layer.lora_B["default"].weight]
            u_sv = []
        rows.append(
            {
                "layer": name,
                "weight_norm": w_norm,
                "delta_norm": d_norm,
                "delta_rel": d_norm / w_norm,
                "trainable_norm": float(
                    torch.sqrt(sum(t.double().pow(2).sum() for t in trainable))
                ),
                "delta_sv": sv.tolist(),
                "u_sv": u_sv,
            }
        )
    return rows

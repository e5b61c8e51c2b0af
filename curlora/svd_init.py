"""LoRA initialised on a band of W's singular directions, with W rewritten into a residual.

PiSSA (Meng et al. 2024) puts LoRA on the *largest* r singular directions of W, MiLoRA (Wang et
al. 2024) on the *smallest*, and "Least but not Last" (Quercia et al. 2026) finds forgetting
U-shaped across the band's position, so the band between them is a third arm. All three are one
init: with W = U·diag(S)·Vᵀ and the band k … k + r − 1,

    B₀ = U_band · diag(√S_band) / √s,   A₀ = diag(√S_band) · V_bandᵀ / √s,   W_res = W − s·B₀·A₀,

so the layer's output at initialisation is exactly the base model's (s = PEFT's scaling). PEFT
ships PiSSA (``init_lora_weights="pissa"``); this module builds the other bands on PEFT's own
LoRA layers, and records B₀, A₀ on every residual-initialised layer so that ΔW is read from the
original W, not from the residual.
"""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.targets import base_layer, weight_matrix

#: Where a layer keeps its residual init: {adapter name: (s·B₀, A₀)}.
INITIAL = "curlora_initial"


def band_start(position: str, rank: int, singular_values: int) -> int:
    """The first singular direction of a band: 'principal' (PiSSA), 'minor' (MiLoRA) or
    'middle' (centred between them)."""
    starts = {
        "principal": 0,
        "minor": singular_values - rank,
        "middle": (singular_values - rank) // 2,
    }
    if position not in starts:
        raise ValueError(f"Unknown band position {position!r}; choose one of {', '.join(starts)}.")
    return starts[position]


@torch.no_grad()
def init_band(layer: LoraLayer, adapter: str, position: str) -> None:
    """Initialise ``adapter`` of a PEFT LoRA layer on a band of its weight's singular directions
    and subtract it from the base weight (the layer's output is unchanged)."""
    W = weight_matrix(layer)
    A, B = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    rank, scaling = A.shape[0], layer.scaling[adapter]
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    k = band_start(position, rank, len(S))
    root = S[k : k + rank].sqrt()
    B0 = (U[:, k : k + rank] * root) / scaling**0.5
    A0 = (root[:, None] * Vh[k : k + rank]) / scaling**0.5
    B.copy_(B0.to(B.dtype))
    A.copy_(A0.to(A.dtype))
    residual = W.double() - scaling * (B0 @ A0)
    base = base_layer(layer)
    base.weight.copy_((residual.T if isinstance(base, Conv1D) else residual).to(base.weight.dtype))
    record_initial(layer, adapter)


@torch.no_grad()
def record_initial(layer: nn.Module, adapter: str) -> None:
    """Keep a LoRA layer's initial (s·B₀, A₀): ΔW from the original W is s·B·A − s·B₀·A₀."""
    scaling = layer.scaling[adapter]
    initial = getattr(layer, INITIAL, {})
    initial[adapter] = (
        scaling * layer.lora_B[adapter].weight.detach().clone(),
        layer.lora_A[adapter].weight.detach().clone(),
    )
    setattr(layer, INITIAL, initial)


def initial_delta(layer: nn.Module, adapter: str) -> torch.Tensor | None:
    """s·B₀·A₀ of a residual-initialised layer (what W_res lacks of W), else None."""
    record = getattr(layer, INITIAL, {}).get(adapter)
    return None if record is None else record[0] @ record[1]

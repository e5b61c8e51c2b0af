"""How much an adapter changes the model: ‖ΔW‖/‖W‖, U spectra, output shift — numbers to plot."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from curlora.inject import adapter_layers
from curlora.methods import Factors, method_of_layer
from curlora.svd_init import initial_delta
from curlora.targets import weight_matrix
from curlora.tuners import FactoredLayer


def _adapter(layer: nn.Module) -> str:
    """The adapter a layer's numbers are about: its (first) active one."""
    return layer.active_adapters[0]


def delta_factors(layer: nn.Module) -> Factors:
    """ΔW of an adapted layer as (left, core, right) per output block, ΔW_b = left·core·right.

    CURLoRA / SVD peer: (alpha·C, U, R). PEFT LoRA: (scaling·B, I, A). Working with the thin
    factors gives exact norms and singular values without forming the out × in matrix. A layer
    of no registered method raises rather than being read as another's.
    """
    return method_of_layer(layer).factors(layer, _adapter(layer))


def original_weight(layer: nn.Module) -> torch.Tensor:
    """The layer's weight before the adapter (out × in): a residual init (PiSSA, MiLoRA-style)
    rewrote the base weight, and the part it moved into the adapter is added back."""
    W = weight_matrix(layer)
    moved = initial_delta(layer, _adapter(layer))
    return W if moved is None else W + moved.to(W.dtype)


def delta_weight(layer: nn.Module) -> torch.Tensor:
    """ΔW of an adapted layer (its active adapter) as an out × in matrix."""
    return torch.cat(
        [left @ core.to(left.dtype) @ right for left, core, right in delta_factors(layer)]
    )


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
        w_norm = float(torch.linalg.matrix_norm(original_weight(layer).double()))
        sv = delta_singular_values(layer)
        d_norm = float(sv.norm())
        trainable = [p for n, p in layer.named_parameters() if not n.startswith("base_layer.")]
        u_sv = (
            torch.linalg.svdvals(layer.part("U")[_adapter(layer)].double()).flatten().tolist()
            if isinstance(layer, FactoredLayer)
            else []
        )
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


@torch.no_grad()
def output_shift(model: nn.Module, input_ids: torch.Tensor) -> dict[str, float]:
    """Per adapted layer: ‖x·ΔWᵀ‖ / ‖x·Wᵀ‖ over the tokens of ``input_ids`` (batch × length) —
    how much the adapter actually moves that layer's output on real input, not just how large
    ΔW is."""
    ids = input_ids
    device = next(model.parameters()).device
    seen: dict[str, tuple[float, float]] = {}
    hooks = []
    for name, layer in adapter_layers(model):

        def hook(module, inputs, output, name=name, layer=layer):
            x = inputs[0]
            W = original_weight(layer)
            delta = delta_weight(layer)
            seen[name] = (
                float((x @ delta.T.to(x.dtype)).norm()),
                float((x @ W.T.to(x.dtype)).norm()),
            )

        hooks.append(layer.register_forward_hook(hook))
    try:
        model(input_ids=ids.to(device))
    finally:
        for h in hooks:
            h.remove()
    return {name: d / w for name, (d, w) in seen.items()}


def effective_steps(layers: pd.DataFrame) -> pd.DataFrame:
    """Per adapted layer after the last task: ‖ΔW‖_F and the output shift per unit of trainable
    update ‖θ − θ₀‖ (``weight_per_step``, ``shift_per_step``): the scale C and R give a step."""
    last = layers[(layers["stage"] == layers["stage"].max()) & (layers["update_norm"] > 0)]
    return last.assign(
        weight_per_step=last["delta_norm"] / last["update_norm"],
        shift_per_step=last["output_shift"] / last["update_norm"],
    )


def effective_step_medians(layers: pd.DataFrame) -> pd.DataFrame:
    """``effective_steps``' medians over layers, per arm."""
    steps = effective_steps(layers).groupby("arm")[["weight_per_step", "shift_per_step"]].median()
    return steps.rename(
        columns={
            "weight_per_step": "‖ΔW‖ per unit update",
            "shift_per_step": "output shift per unit update",
        }
    )

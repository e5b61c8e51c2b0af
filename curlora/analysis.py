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


@torch.no_grad()
def output_shift(model: nn.Module, tokenizer, text: str, max_tokens: int = 256) -> dict[str, float]:
    """Per adapted layer: ‖x·ΔWᵀ‖ / ‖x·Wᵀ‖ over the tokens of ``text`` — how much the adapter
    actually moves that layer's output on real input (not just how large ΔW is)."""
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :max_tokens]
    device = next(model.parameters()).device
    seen: dict[str, tuple[float, float]] = {}
    hooks = []
    for name, layer in adapter_layers(model):
        base = layer.base if isinstance(layer, FactoredAdapter) else layer.get_base_layer()

        def hook(module, inputs, output, name=name, layer=layer, base=base):
            x = inputs[0]
            W = weight_matrix(base)
            delta = (
                layer.delta_weight() if isinstance(layer, FactoredAdapter) else _lora_delta(layer)
            )
            seen[name] = (float((x @ delta.T.to(x.dtype)).norm()), float((x @ W.T).norm()))

        hooks.append(layer.register_forward_hook(hook))
    try:
        model(input_ids=ids.to(device))
    finally:
        for h in hooks:
            h.remove()
    return {name: d / w for name, (d, w) in seen.items()}


def _lora_delta(layer: nn.Module) -> torch.Tensor:
    ((left, core, right),) = delta_factors(layer)
    return left @ core @ right


def uniformity_vs_width(
    widths: list[int], modes: tuple[str, ...], rows: int = 64, spread: float = 1.0, seed: int = 0
) -> list[dict]:
    """Total-variation distance from uniform of each mode's column probabilities, for matrices
    of growing width whose column norms vary log-normally (σ = ``spread``)."""
    from curlora.cur import selection_probabilities, total_variation_from_uniform

    g = torch.Generator().manual_seed(seed)
    out = []
    for n in widths:
        scales = torch.exp(spread * torch.randn(n, generator=g))
        W = torch.randn(rows, n, generator=g) * scales
        for mode in modes:
            p = selection_probabilities(W, "columns", mode)
            out.append(
                {"width": n, "mode": mode, "tv_from_uniform": total_variation_from_uniform(p)}
            )
    return out


def picked_energy_share(
    W: torch.Tensor, rank: int, modes: tuple[str, ...], seeds: list[int], axis: str = "columns"
) -> list[dict]:
    """Share of ‖W‖_F² carried by the distinct columns (or rows) each mode picks, per seed."""
    from curlora.cur import select_indices, squared_norms

    sq = squared_norms(W, axis)
    out = []
    for mode in modes:
        for seed in seeds:
            idx = select_indices(W, axis, rank, mode, torch.Generator().manual_seed(seed)).unique()
            out.append(
                {
                    "mode": mode,
                    "seed": seed,
                    "share": float(sq[idx].sum() / sq.sum()),
                    "distinct": len(idx),
                }
            )
    return out


def parameter_table(
    configs: list[str],
    ranks: list[int],
    methods: tuple[str, ...] = ("full", "lora", "curlora", "svd"),
) -> list[dict]:
    """Trainable parameters per shipped config, method and rank (Q/K/V preset, heads excluded)."""
    from curlora.inject import count_parameters, meta_model

    rows = []
    for config in configs:
        model = meta_model(config)  # built once per config, counted many times
        full = count_parameters(model, "full")
        for rank in ranks:
            for method in methods:
                n = count_parameters(model, method, rank)
                rows.append(
                    {
                        "model": config,
                        "rank": rank,
                        "method": method,
                        "trainable": n,
                        "share_of_full": n / full,
                    }
                )
    return rows


def head_parameters(configs: list[str], n_labels: list[int]) -> list[dict]:
    """Parameters of a task head (hidden → labels, with bias) per config: counted apart from adapters."""
    from curlora.inject import load_config

    rows = []
    for config in configs:
        c = load_config(config)
        hidden = getattr(c, "hidden_size", None) or c.n_embd
        rows.extend({"model": config, "labels": k, "head": hidden * k + k} for k in n_labels)
    return rows


def named_weights(
    model: nn.Module, targets: list[str] | str, layers: list[int] | None = None
) -> dict[str, torch.Tensor]:
    """Out × in weights of the modules ``targets`` names (suffixes or a regex), detached;
    ``layers`` keeps only those whose name has one of these block numbers (``.N.``)."""
    from curlora.inject import resolve_targets

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
    from curlora.cur import reconstruction_error

    return [
        {
            "rank": r,
            "mode": m,
            "seed": s,
            "error": reconstruction_error(W, r, m, torch.Generator().manual_seed(s)),
        }
        for r in ranks
        for m in modes
        for s in seeds
    ]

"""The compared methods, one entry each: how a method is configured, counted, read and shown.

Everything that differs between methods lives in its ``Method`` entry, so adding a method is one
entry here plus its tests: ``apply_adapter`` builds its PEFT config, ``count_parameters`` counts
it, ``analysis`` reads its ΔW, and the research layer (``curlora.arms``) names and colours it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftConfig
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.targets import base_layer
from curlora.tuners import CURLoRAConfig, CURLoRALayer, SVDPeerConfig, SVDPeerLayer

#: ΔW of one adapted layer as (left, core, right) per output block: ΔW_b = left · core · right.
Factors = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class AdapterSettings:
    """What ``apply_adapter`` was asked for, as every method's config builder reads it."""

    rank: int
    alpha: float
    targets: list[str] | str | None  # as given (None: the resolved ``names``)
    names: list[str]  # the resolved target module names
    sampling: str
    seed: int
    split_fused: bool


@dataclass(frozen=True)
class Method:
    """One compared method: its name, how it is shown, configured, counted and read."""

    name: str
    display: str
    #: Its colour in every figure (a matplotlib colour).
    color: str
    #: What it is in a study: the method under test, a peer it is compared with at equal
    #: learning, an ablation of its own design, or a control.
    role: str
    #: (model, settings) → the PEFT config; None for a method that adds no adapter.
    config: Callable[[nn.Module, AdapterSettings], PeftConfig] | None = None
    #: (out, in, rank, blocks) → trainable parameters of one adapted out × in matrix whose fused
    #: output is cut into ``blocks`` (1 unless ``split_fused``).
    trainable: Callable[[int, int, int, int], int] | None = None
    #: The tuner layer type whose ΔW ``factors`` reads.
    layer: type | None = None
    factors: Callable[[nn.Module, str], Factors] | None = None
    #: Whether its columns/rows are drawn by a sampling rule (``curlora.cur.SAMPLING_MODES``).
    samples: bool = False
    #: Whether a rank-split of fused Q/K/V (``split_fused``) applies to it.
    splits_fused: bool = True


def _lora_config(model: nn.Module, s: AdapterSettings) -> PeftConfig:
    return LoraConfig(
        r=s.rank,
        # PEFT scales by lora_alpha / r; the paper's baseline is x·A·B·alpha with no /r.
        lora_alpha=s.alpha * s.rank,
        lora_dropout=0.0,
        target_modules=s.targets if s.targets is not None else s.names,
        fan_in_fan_out=any(isinstance(base_layer(model.get_submodule(n)), Conv1D) for n in s.names),
    )


def _factored_settings(s: AdapterSettings) -> dict:
    return {
        "r": s.rank,
        "alpha": s.alpha,
        "target_modules": s.targets,
        "split_fused": s.split_fused,
    }


def _lora_factors(layer: nn.Module, name: str) -> Factors:
    if layer.use_dora.get(name):
        # DoRA rescales each column of W + ΔW by a trained magnitude: B·A alone is not its ΔW.
        raise TypeError(
            f"Adapter {name!r} is DoRA (use_dora=True): its ΔW is not scaling·B·A; register DoRA "
            "as its own method in curlora.methods.REGISTRY with a reader for its magnitude."
        )
    A, B = layer.lora_A[name].weight, layer.lora_B[name].weight
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    return [(layer.scaling[name] * B, eye, A)]


def _factored_factors(layer: nn.Module, name: str) -> Factors:
    C, U, R = layer.factors(name)
    if layer.split[name] == 1:
        C, U, R = C[None], U[None], R[None]
    return list(zip(C, U, R, strict=True))


REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "curlora",
            "CURLoRA",
            "C0",
            "subject",
            config=lambda model, s: CURLoRAConfig(
                sampling=s.sampling, seed=s.seed, **_factored_settings(s)
            ),
            trainable=lambda out_f, in_f, r, k: k * r * r,
            layer=CURLoRALayer,
            factors=_factored_factors,
            samples=True,
        ),
        Method(
            "lora",
            "LoRA",
            "C3",
            "peer",
            config=_lora_config,
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f),
            layer=LoraLayer,
            factors=_lora_factors,
            splits_fused=False,
        ),
        Method(
            "svd",
            "the SVD peer",
            "C2",
            "ablation",
            config=lambda model, s: SVDPeerConfig(**_factored_settings(s)),
            trainable=lambda out_f, in_f, r, k: k * r * r,
            layer=SVDPeerLayer,
            factors=_factored_factors,
        ),
        Method("head-only", "head-only", "C7", "control"),
    )
}


def adapter_methods() -> tuple[str, ...]:
    """The registered methods that put an adapter on the model, in registry order."""
    return tuple(name for name, m in REGISTRY.items() if m.config is not None)


def method(name: str) -> Method:
    """The registry entry of ``name``, or an error listing the known methods."""
    if name not in REGISTRY:
        raise ValueError(f"Unknown method {name!r}; choose one of {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def method_of_layer(layer: nn.Module) -> Method:
    """The method whose tuner layer ``layer`` is (the first match in registry order)."""
    for m in REGISTRY.values():
        if m.layer is not None and isinstance(layer, m.layer):
            return m
    known = ", ".join(m.layer.__name__ for m in REGISTRY.values() if m.layer is not None)
    raise TypeError(
        f"{type(layer).__name__} is not a layer of a registered method (known: {known}); "
        "register its method in curlora.methods.REGISTRY with a `factors` reader before "
        "analysing it."
    )

"""The compared methods, one entry each: how a method is configured, counted, read and shown.

Everything that differs between methods lives in its ``Method`` entry, so adding a method is one
entry here plus its tests: ``apply_adapter`` builds its PEFT config, ``count_parameters`` counts
it, ``analysis`` reads its ΔW, and the research layer (``curlora.arms``) names and colours it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from peft import LoraConfig, OSFConfig, PeftConfig
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.config import CordaConfig
from peft.tuners.lora.corda import preprocess_corda
from peft.tuners.osf import OSFLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.svd_init import INITIAL, init_band, record_initial
from curlora.targets import base_layer, weight_matrix
from curlora.tuners import (
    CURLoRAConfig,
    CURLoRALayer,
    FullConfig,
    FullLayer,
    SVDPeerConfig,
    SVDPeerLayer,
)

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
    #: Token ids (batch × length) of text that shows what the model knows, for methods that
    #: calibrate on it before injection (CorDA); None for the others.
    calibration: torch.Tensor | None = None


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
    #: (layer, adapter) → whether a layer of ``layer``'s type is this method's (several methods
    #: share PEFT's LoRA layer); None: every layer of the type.
    recognises: Callable[[nn.Module, str], bool] | None = None
    #: (model, config, settings) → None: what the method computes before PEFT injects it (CorDA's
    #: covariance on ``settings.calibration``).
    before_inject: Callable[[nn.Module, PeftConfig, AdapterSettings], None] | None = None
    #: (adapted model, settings) → None: what the method does after PEFT injected it (an init
    #: PEFT has no flag for, or recording where a residual init started).
    after_inject: Callable[[nn.Module, AdapterSettings], None] | None = None
    #: How it changes the base weights before training (shown beside its parameter count).
    base_weights: str = "kept"


def _lora_config(model: nn.Module, s: AdapterSettings) -> PeftConfig:
    return LoraConfig(
        r=s.rank,
        # PEFT scales by lora_alpha / r; the paper's baseline is x·A·B·alpha with no /r.
        lora_alpha=s.alpha * s.rank,
        lora_dropout=0.0,
        target_modules=s.targets if s.targets is not None else s.names,
        fan_in_fan_out=any(isinstance(base_layer(model.get_submodule(n)), Conv1D) for n in s.names),
    )


def _dora_config(model: nn.Module, s: AdapterSettings) -> PeftConfig:
    config = _lora_config(model, s)
    config.use_dora = True
    return config


def _pissa_config(model: nn.Module, s: AdapterSettings) -> PeftConfig:
    config = _lora_config(model, s)
    config.init_lora_weights = "pissa"  # PEFT's exact SVD: the matrices here are small
    return config


def _corda_config(model: nn.Module, s: AdapterSettings) -> PeftConfig:
    config = _lora_config(model, s)
    # Knowledge-preserved mode: the adapter starts on the directions the calibration text uses
    # least, and W keeps the rest (Yang et al. 2024, CorDA).
    config.init_lora_weights = "corda"
    config.corda_config = CordaConfig(corda_method="kpm")
    return config


def _corda_covariance(model: nn.Module, config: PeftConfig, s: AdapterSettings) -> None:
    if s.calibration is None:
        raise ValueError(
            "CorDA collects each layer's input covariance on text that shows what the model knows "
            "before it injects the adapter; pass calibration= token ids (batch × length), e.g. "
            "held-in Wikipedia (curlora.data.offline.wiki_calibration_text), never the perplexity "
            "text."
        )
    ids = s.calibration.to(next(model.parameters()).device)

    @torch.no_grad()
    def run_model() -> None:
        # PEFT's covariance hook reads one sequence at a time (it squeezes the batch dimension).
        for row in ids:
            model(input_ids=row[None])

    preprocess_corda(model, config, run_model=run_model)


def _osf_config(model: nn.Module, s: AdapterSettings) -> PeftConfig:
    # OSF freezes the top `effective_rank` singular directions and trains the rest: r trainable
    # directions per matrix is an effective rank of min(out, in) − r, set module by module.
    pattern = {
        rf"(^|\.){re.escape(n)}$": min(weight_matrix(model.get_submodule(n)).shape) - s.rank
        for n in s.names
    }
    return OSFConfig(
        target_modules=s.targets if s.targets is not None else s.names, rank_pattern=pattern
    )


def _lora_layers(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def _record_initial(model: nn.Module, s: AdapterSettings) -> None:
    for _, layer in _lora_layers(model):
        for adapter in layer.lora_A:
            record_initial(layer, adapter)


def _band(position: str) -> Callable[[nn.Module, AdapterSettings], None]:
    def init(model: nn.Module, s: AdapterSettings) -> None:
        for _, layer in _lora_layers(model):
            for adapter in layer.lora_A:
                init_band(layer, adapter, position)

    return init


def _factored_settings(s: AdapterSettings) -> dict:
    return {
        "r": s.rank,
        "alpha": s.alpha,
        "target_modules": s.targets,
        "split_fused": s.split_fused,
    }


def _lora_factors(layer: nn.Module, name: str) -> Factors:
    A, B = layer.lora_A[name].weight, layer.lora_B[name].weight
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
    return [(layer.scaling[name] * B, eye, A)]


def _residual_factors(layer: nn.Module, name: str) -> Factors:
    """ΔW from the original W of a residual-initialised LoRA: s·B·A − s·B₀·A₀ (rank 2r)."""
    initial = getattr(layer, INITIAL, {}).get(name)
    if initial is None:
        raise TypeError(
            f"Adapter {name!r} was initialised into a residual of W, but its initial B₀, A₀ were "
            "not recorded (apply it with curlora.apply_adapter), so ΔW from the original W "
            "cannot be read."
        )
    sB0, A0 = initial
    A, B = layer.lora_A[name].weight, layer.lora_B[name].weight
    left = torch.cat([layer.scaling[name] * B, -sB0.to(B.dtype)], dim=1)
    right = torch.cat([A, A0.to(A.dtype)], dim=0)
    return [(left, torch.eye(left.shape[1], dtype=A.dtype, device=A.device), right)]


def _dora_factors(layer: nn.Module, name: str) -> Factors:
    """DoRA's ΔW, dense: each output row of W + s·B·A rescaled to its trained magnitude, minus W
    (the magnitude makes it full-rank in general, so no thin factors exist)."""
    W = weight_matrix(layer)
    A, B = layer.lora_A[name].weight, layer.lora_B[name].weight
    merged = W + layer.scaling[name] * (B @ A).to(W.dtype)
    magnitude = layer.lora_magnitude_vector[name].weight
    return _dense(magnitude[:, None] * merged / merged.norm(dim=1, keepdim=True) - W)


def _dense(delta: torch.Tensor) -> Factors:
    """A ΔW with no thin factors, as (ΔW, I, I)."""
    eye = torch.eye(delta.shape[1], dtype=delta.dtype, device=delta.device)
    return [(delta, eye, eye)]


def _full_factors(layer: nn.Module, name: str) -> Factors:
    return _dense(layer.delta_matrix(name))


def _osf_factors(layer: nn.Module, name: str) -> Factors:
    """OSF's ΔW = U·diag(S)·V − U₀·diag(S₀)·V₀ over its trainable directions (rank 2r)."""
    p = layer.osf_svd_params[name]
    U0, S0, V0 = (getattr(layer, f"_osf_{k}_low_init")[name] for k in ("U", "S", "V"))
    left = torch.cat([p["U_low"] * p["S_low"], -(U0 * S0)], dim=1)
    core = torch.eye(left.shape[1], dtype=left.dtype, device=left.device)
    return [(left, core, torch.cat([p["V_low"], V0], dim=0))]


def _is_lora(kind: str) -> Callable[[nn.Module, str], bool]:
    """A LoRA layer of one kind: DoRA (use_dora), residual-initialised, or plain."""

    def recognises(layer: nn.Module, name: str) -> bool:
        dora = bool(layer.use_dora.get(name))
        residual = name in getattr(layer, INITIAL, {})
        return {"dora": dora, "residual": residual and not dora, "plain": not (dora or residual)}[
            kind
        ]

    return recognises


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
            recognises=_is_lora("plain"),
        ),
        Method(
            "dora",
            "DoRA",
            "C4",
            "peer",
            config=_dora_config,
            # B·A plus one magnitude per output row.
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f) + out_f,
            layer=LoraLayer,
            factors=_dora_factors,
            splits_fused=False,
            recognises=_is_lora("dora"),
        ),
        Method(
            "pissa",
            "PiSSA",
            "C5",
            "peer",
            config=_pissa_config,
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f),
            layer=LoraLayer,
            factors=_residual_factors,
            splits_fused=False,
            recognises=_is_lora("residual"),
            after_inject=_record_initial,
            base_weights="W − its top-r singular part (the adapter starts there)",
        ),
        Method(
            "milora",
            "MiLoRA-style",
            "C6",
            "peer",
            config=_lora_config,
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f),
            layer=LoraLayer,
            factors=_residual_factors,
            splits_fused=False,
            recognises=_is_lora("residual"),
            after_inject=_band("minor"),
            base_weights="W − its bottom-r singular part (the adapter starts there)",
        ),
        Method(
            "middle",
            "middle singular band",
            "C8",
            "peer",
            config=_lora_config,
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f),
            layer=LoraLayer,
            factors=_residual_factors,
            splits_fused=False,
            recognises=_is_lora("residual"),
            after_inject=_band("middle"),
            base_weights="W − r singular directions from the middle of its spectrum",
        ),
        Method(
            "corda",
            "CorDA (knowledge-preserved)",
            "#006d5b",
            "peer",
            config=_corda_config,
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f),
            layer=LoraLayer,
            factors=_residual_factors,
            splits_fused=False,
            recognises=_is_lora("residual"),
            before_inject=_corda_covariance,
            after_inject=_record_initial,
            base_weights="W − the r directions its calibration text uses least (the adapter "
            "starts there)",
        ),
        Method(
            "osf",
            "OSF",
            "C9",
            "peer",
            config=_osf_config,
            # U, S and V of the r trainable singular directions.
            trainable=lambda out_f, in_f, r, k: r * (out_f + in_f + 1),
            layer=OSFLayer,
            factors=_osf_factors,
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
        Method(
            "full",
            "full fine-tuning",
            "#222222",
            "peer",
            config=lambda model, s: FullConfig(
                target_modules=s.targets if s.targets is not None else s.names
            ),
            # Every entry of the adapted matrix; rank plays no part.
            trainable=lambda out_f, in_f, r, k: out_f * in_f,
            layer=FullLayer,
            factors=_full_factors,
            splits_fused=False,
            base_weights="kept (ΔW trains as W itself would)",
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


#: The attribute ``apply_adapter`` tags each adapted layer with: {adapter name: method}.
TAG = "curlora_method"


def method_of_layer(layer: nn.Module) -> Method:
    """The method whose layer ``layer`` is: the one ``apply_adapter`` tagged it with, else the
    first whose layer type and ``recognises`` rule match (registry order)."""
    adapter = layer.active_adapters[0] if getattr(layer, "active_adapters", None) else None
    tagged = getattr(layer, TAG, {}).get(adapter)
    if tagged is not None:
        return REGISTRY[tagged]
    for m in REGISTRY.values():
        if (
            m.layer is not None
            and isinstance(layer, m.layer)
            and (m.recognises is None or m.recognises(layer, adapter))
        ):
            return m
    known = ", ".join(sorted({m.layer.__name__ for m in REGISTRY.values() if m.layer is not None}))
    raise TypeError(
        f"{type(layer).__name__} is not a layer of a registered method (known: {known}); "
        "register its method in curlora.methods.REGISTRY with a `factors` reader before "
        "analysing it."
    )

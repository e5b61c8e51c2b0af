"""``apply_adapter``: the one-line way to put an adapter of any compared method on a model.

It is a thin layer over PEFT: every method is a ``PeftConfig`` (``adapter_config``) injected by
PEFT's own ``inject_adapter_in_model``, CURLoRA and the SVD peer through the tuners registered in
``curlora.tuners``, LoRA through PEFT's LoRA. Use ``peft.get_peft_model`` with the same config
for ``save_pretrained`` / ``PeftModel.from_pretrained`` / ``merge_and_unload``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch
from peft import PeftConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from curlora.methods import REGISTRY, TAG, AdapterSettings, adapter_methods
from curlora.targets import check_targets_rank, resolve_targets


def adapter_config(
    model: nn.Module,
    method: str = "curlora",
    rank: int = 16,
    alpha: float = 1.0,
    target_modules: list[str] | str | None = None,
    sampling: str = "inverse",
    seed: int = 0,
    split_fused: bool = False,
) -> PeftConfig:
    """The PEFT config of ``method`` for ``model``, checked against its layers before anything changes.

    ``lora`` is PEFT's LoRA with the paper's scaling x·A·B·alpha (``lora_alpha = alpha·rank``).
    """
    if method not in adapter_methods():
        raise ValueError(
            f"Unknown adapter method {method!r}; choose one of {', '.join(adapter_methods())}."
        )
    entry = REGISTRY[method]
    settings = _settings(model, rank, alpha, target_modules, sampling, seed, split_fused)
    check_targets_rank(model, settings.names, rank, split_fused and entry.splits_fused)
    return entry.config(model, settings)


def _settings(
    model: nn.Module,
    rank: int,
    alpha: float,
    target_modules: list[str] | str | None,
    sampling: str,
    seed: int,
    split_fused: bool,
    calibration: torch.Tensor | None = None,
) -> AdapterSettings:
    """What a method's config and hooks read: the request, its target modules resolved (the
    adapted layers, once there are some)."""
    names = [n for n, _ in adapter_layers(model)] or resolve_targets(model, target_modules)
    targets = list(target_modules) if isinstance(target_modules, (list, tuple)) else target_modules
    return AdapterSettings(rank, alpha, targets, names, sampling, seed, split_fused, calibration)


def _inject(model: nn.Module, method: str, config: PeftConfig, settings: AdapterSettings, build):
    """``build(config, model)``, PEFT's injection, after the method's own preparation, with
    LoRA's A drawn from the seed alone; then the method's init step and a tag on every layer."""
    entry = REGISTRY[method]
    if entry.before_inject is not None:
        entry.before_inject(model, config, settings)
    # PEFT initialises LoRA's A from the global RNG; fork it so the seed alone decides A.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = build(config, model)
    if entry.after_inject is not None:
        entry.after_inject(model, replace(settings, names=[n for n, _ in adapter_layers(model)]))
    for _, layer in adapter_layers(model):
        # Several methods share PEFT's LoRA layer: the tag says which one this is.
        setattr(layer, TAG, {a: method for a in layer.active_adapters})
    return model


def apply_adapter(
    model: nn.Module,
    method: str = "curlora",
    rank: int = 16,
    alpha: float = 1.0,
    target_modules: list[str] | str | None = None,
    sampling: str = "inverse",
    seed: int = 0,
    split_fused: bool = False,
    calibration: torch.Tensor | None = None,
) -> nn.Module:
    """Freeze ``model`` and inject an adapter of ``method`` into its target layers (in place); returns it.

    ``curlora``: columns/rows drawn by ``sampling`` (per layer, from ``seed`` and the layer's
    name). ``svd``: the r×r SVD peer. ``lora``: PEFT's LoRA, A initialised from ``seed``.
    ``corda``: needs ``calibration``, token ids of text that shows what the model knows.
    ``head-only``: freeze only. ``split_fused`` gives fused Q/K/V layers (GPT-2 ``c_attn``) one
    adapter per block. The model's ``peft_config`` records the settings, as PEFT does.
    """
    if method not in REGISTRY:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(REGISTRY)}.")
    carrying = next((n for n, _ in adapter_layers(model)), None)
    if carrying is not None:
        raise ValueError(
            f"{carrying} already carries an adapter; apply_adapter once per model (load a fresh "
            "base model to start over, or use peft's add_adapter for a second named adapter)."
        )
    model.requires_grad_(False)
    if method == "head-only":
        return model
    config = adapter_config(model, method, rank, alpha, target_modules, sampling, seed, split_fused)
    settings = _settings(
        model, rank, alpha, target_modules, sampling, seed, split_fused, calibration
    )
    return _inject(model, method, config, settings, inject_adapter_in_model)


def peft_model(
    model: nn.Module,
    method: str = "curlora",
    rank: int = 16,
    alpha: float = 1.0,
    target_modules: list[str] | str | None = None,
    sampling: str = "inverse",
    seed: int = 0,
    split_fused: bool = False,
    calibration: torch.Tensor | None = None,
):
    """``peft.get_peft_model`` with ``method``'s config and its init (e.g. MiLoRA-style bands,
    which PEFT has no flag for): a ``PeftModel`` for ``save_pretrained`` and the Trainer."""
    from peft import get_peft_model

    config = adapter_config(model, method, rank, alpha, target_modules, sampling, seed, split_fused)
    settings = _settings(
        model, rank, alpha, target_modules, sampling, seed, split_fused, calibration
    )
    return _inject(model, method, config, settings, lambda c, m: get_peft_model(m, c))


def adapter_layers(model: nn.Module) -> Iterator[tuple[str, BaseTunerLayer]]:
    """(name, layer) of every adapted layer: CURLoRA, the SVD peer and PEFT's LoRA alike."""
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            yield name, module

"""``apply_adapter``: the one-line way to put an adapter of any compared method on a model.

It is a thin layer over PEFT: every method is a ``PeftConfig`` (``adapter_config``) injected by
PEFT's own ``inject_adapter_in_model``, CURLoRA and the SVD peer through the tuners registered in
``curlora.tuners``, LoRA through PEFT's LoRA. Use ``peft.get_peft_model`` with the same config
for ``save_pretrained`` / ``PeftModel.from_pretrained`` / ``merge_and_unload``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from peft import LoraConfig, PeftConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.targets import base_layer, check_targets_rank, resolve_targets
from curlora.tuners import CURLoRAConfig, SVDPeerConfig

#: Adapter methods ``apply_adapter`` knows. ``head-only`` adds no adapter (the control).
METHODS = ("curlora", "lora", "svd", "head-only")


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
    if method not in METHODS or method == "head-only":
        choices = ", ".join(m for m in METHODS if m != "head-only")
        raise ValueError(f"Unknown adapter method {method!r}; choose one of {choices}.")
    names = resolve_targets(model, target_modules)
    check_targets_rank(model, names, rank, split_fused and method != "lora")
    targets = list(target_modules) if isinstance(target_modules, (list, tuple)) else target_modules
    if method == "lora":
        return LoraConfig(
            r=rank,
            # PEFT scales by lora_alpha / r; the paper's baseline is x·A·B·alpha with no /r.
            lora_alpha=alpha * rank,
            lora_dropout=0.0,
            target_modules=targets if targets is not None else names,
            fan_in_fan_out=any(
                isinstance(base_layer(model.get_submodule(n)), Conv1D) for n in names
            ),
        )
    common = {"r": rank, "alpha": alpha, "target_modules": targets, "split_fused": split_fused}
    if method == "curlora":
        return CURLoRAConfig(sampling=sampling, seed=seed, **common)
    return SVDPeerConfig(**common)


def apply_adapter(
    model: nn.Module,
    method: str = "curlora",
    rank: int = 16,
    alpha: float = 1.0,
    target_modules: list[str] | str | None = None,
    sampling: str = "inverse",
    seed: int = 0,
    split_fused: bool = False,
) -> nn.Module:
    """Freeze ``model`` and inject an adapter of ``method`` into its target layers (in place); returns it.

    ``curlora``: columns/rows drawn by ``sampling`` (per layer, from ``seed`` and the layer's
    name). ``svd``: the r×r SVD peer. ``lora``: PEFT's LoRA, A initialised from ``seed``.
    ``head-only``: freeze only. ``split_fused`` gives fused Q/K/V layers (GPT-2 ``c_attn``) one
    adapter per block. The model's ``peft_config`` records the settings, as PEFT does.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
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
    # PEFT initialises LoRA's A from the global RNG; fork it so the seed alone decides A.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return inject_adapter_in_model(config, model)


def adapter_layers(model: nn.Module) -> Iterator[tuple[str, BaseTunerLayer]]:
    """(name, layer) of every adapted layer: CURLoRA, the SVD peer and PEFT's LoRA alike."""
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            yield name, module

"""Saving and loading adapters: safetensors holding U (or LoRA's A, B), the sampled indices,
the adapter's settings, and a fingerprint of the base weights it was trained on.

C and R are never stored: they are columns and rows of the base model, rebuilt from the
indices, so a file is r² + 2r numbers per layer and cannot silently pair with another base.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from curlora.inject import _set_module, adapter_layers, fused_split, inject_peft_lora
from curlora.layers import CURLoRALinear, FactoredAdapter, SVDPeerLinear, weight_matrix
from curlora.storage import atomic_path

FORMAT = "curlora-adapter"
FORMAT_VERSION = "1"


def _base_layer(module: nn.Module) -> nn.Module:
    if isinstance(module, FactoredAdapter):
        return module.base
    if hasattr(module, "get_base_layer"):  # PEFT LoRA layer
        return module.get_base_layer()
    return module


def base_fingerprint(model: nn.Module, names: list[str]) -> str:
    """SHA-256 of the named layers' base weights, rounded to bfloat16.

    Rounding first makes the same checkpoint match whether it is loaded in fp32 or bf16,
    while any genuinely different model changes the hash.
    """
    modules = dict(model.named_modules())
    digest = hashlib.sha256()
    for name in sorted(names):
        layer = modules[name]
        if getattr(layer, "merged", False):
            raise RuntimeError(f"{name} is merged; call unmerge() before saving or loading.")
        W = weight_matrix(_base_layer(layer)).detach().to("cpu", torch.bfloat16).contiguous()
        digest.update(f"{name}:{tuple(W.shape)};".encode())
        digest.update(W.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()


def _adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, layer in adapter_layers(model):
        if isinstance(layer, FactoredAdapter):
            tensors[f"{name}.U"] = layer.U
            if isinstance(layer, CURLoRALinear):
                tensors[f"{name}.col_idx"] = layer.col_idx
                tensors[f"{name}.row_idx"] = layer.row_idx
        else:
            tensors[f"{name}.lora_A"] = layer.lora_A["default"].weight
            tensors[f"{name}.lora_B"] = layer.lora_B["default"].weight
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the model's adapter to ``path`` (safetensors, written atomically); returns the path."""
    config = getattr(model, "curlora_config", None)
    if config is None or config["method"] == "head-only":
        raise ValueError(
            "This model carries no adapter; call curlora.apply_adapter(model, ...) first."
        )
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(config),
        "fingerprint": base_fingerprint(model, config["targets"]),
    }
    with atomic_path(path) as tmp:
        save_file(_adapter_tensors(model), str(tmp), metadata=metadata)
    return Path(path)


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise FileNotFoundError(f"No adapter file at {path}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise ValueError(
            f"{path} is not a readable safetensors adapter ({err}). It may be truncated, "
            "corrupted, or another format; save it again with curlora.save_adapter."
        ) from err
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a safetensors file but not a curlora adapter (format="
            f"{metadata.get('format')!r}); save adapters with curlora.save_adapter."
        )
    return metadata, tensors


def load_adapter(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Put the adapter saved at ``path`` on ``model`` (a fresh base model, or one already carrying
    the same adapter layout); refuses a different base model. Returns the model."""
    path = Path(path)
    metadata, tensors = _read(path)
    config = json.loads(metadata["config"])
    names = config["targets"]
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(
            f"The adapter targets {len(missing)} module(s) this model lacks (e.g. {missing[0]}); "
            "it was saved from a different architecture."
        )
    current = getattr(model, "curlora_config", None)
    if current is not None:
        differ = {
            k: (current.get(k), config[k])
            for k in ("method", "rank", "split_fused", "targets")
            if current.get(k) != config[k]
        }
        if differ:
            detail = (
                "; ".join(
                    f"{k}: model {a!r} vs file {b!r}"
                    for k, (a, b) in differ.items()
                    if k != "targets"
                )
                or "different target modules"
            )
            raise ValueError(
                f"This model already carries a different adapter ({detail}). "
                "Load the file into a fresh base model instead."
            )
    found = base_fingerprint(model, names)
    if found != metadata["fingerprint"]:
        raise ValueError(
            f"{path} was trained on different base weights (fingerprint "
            f"{metadata['fingerprint'][:12]}…, this model {found[:12]}…). Load the same base "
            "model (name and revision) the adapter was saved from."
        )
    if current is None:
        _build_layers(model, config, tensors)
    _copy_trainables(model, config, tensors, path)
    model.curlora_config = config
    return model


def _build_layers(model: nn.Module, config: dict, tensors: dict[str, torch.Tensor]) -> None:
    model.requires_grad_(False)
    if config["method"] == "lora":
        inject_peft_lora(model, config["targets"], config["rank"], config["alpha"], seed=0)
        return
    modules = dict(model.named_modules())
    for n in config["targets"]:
        split = fused_split(n, config["split_fused"])
        if config["method"] == "curlora":
            layer = CURLoRALinear(
                modules[n],
                config["rank"],
                config["alpha"],
                config["sampling"],
                split=split,
                col_idx=tensors[f"{n}.col_idx"],
                row_idx=tensors[f"{n}.row_idx"],
            )
        else:
            layer = SVDPeerLinear(modules[n], config["rank"], config["alpha"], split)
        _set_module(model, n, layer)


@torch.no_grad()
def _copy_trainables(model: nn.Module, config: dict, tensors: dict, path: Path) -> None:
    layers = dict(adapter_layers(model))
    for n in config["targets"]:
        layer = layers[n]
        if isinstance(layer, CURLoRALinear):
            same = torch.equal(layer.col_idx.cpu(), tensors[f"{n}.col_idx"]) and torch.equal(
                layer.row_idx.cpu(), tensors[f"{n}.row_idx"]
            )
            if not same:
                raise ValueError(
                    f"{n} sampled other columns/rows than {path} (another seed?); "
                    "load the file into a fresh base model instead."
                )
        pairs = (
            [(layer.U, tensors[f"{n}.U"])]
            if isinstance(layer, FactoredAdapter)
            else [
                (layer.lora_A["default"].weight, tensors[f"{n}.lora_A"]),
                (layer.lora_B["default"].weight, tensors[f"{n}.lora_B"]),
            ]
        )
        for param, saved in pairs:
            if param.shape != saved.shape:
                raise ValueError(
                    f"{n}: the file holds a tensor of shape {tuple(saved.shape)}, the model "
                    f"expects {tuple(param.shape)} (different rank?)."
                )
            param.copy_(saved)

"""Which layers get adapters, putting them there, and counting what trains.

Targets are resolved once here for every method, so CURLoRA, the SVD peer and PEFT's LoRA
always adapt exactly the same layers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.layers import (
    SUPPORTED_LAYERS,
    CURLoRALinear,
    FactoredAdapter,
    SVDPeerLinear,
    check_alpha,
    check_rank,
    weight_matrix,
)

#: Attention projections per architecture (``config.model_type``): the paper adapts Q, K, V.
ATTENTION_PRESETS: dict[str, list[str]] = {
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "k_proj", "v_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj"],
    "bert": ["query", "key", "value"],
    "gpt_neox": ["query_key_value"],
}
#: Fused Q/K/V projections: module suffix → number of equal output blocks.
FUSED_QKV = {"c_attn": 3, "query_key_value": 3}
#: Adapter methods ``apply_adapter`` knows. ``head-only`` adds no adapter (the control).
METHODS = ("curlora", "lora", "svd", "head-only")
#: Where the model configs shipped with the project live (facts, used without weights).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "data" / "configs"


def adaptable_module_names(model: nn.Module) -> list[str]:
    """Names of every Linear/Conv1D module in ``model`` (the layers an adapter can wrap)."""
    return [n for n, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)]


def _summarise(names: list[str]) -> str:
    """Collapse layer numbers so the list of module names stays readable in an error."""
    patterns = dict.fromkeys(re.sub(r"\.\d+\.", ".*.", n) for n in names)
    return ", ".join(patterns) or "(none)"


def default_targets(model: nn.Module) -> list[str]:
    """The attention preset for this model's architecture (``config.model_type``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ATTENTION_PRESETS:
        raise ValueError(
            f"No attention preset for model_type={model_type!r} (presets: "
            f"{', '.join(ATTENTION_PRESETS)}). Pass target_modules explicitly; adaptable "
            f"modules here: {_summarise(adaptable_module_names(model))}."
        )
    return ATTENTION_PRESETS[model_type]


def resolve_targets(model: nn.Module, target_modules: list[str] | str | None = None) -> list[str]:
    """Full names of the modules to adapt: suffix match for a list (as PEFT), fullmatch for a regex."""
    if target_modules is None:
        target_modules = default_targets(model)
    if isinstance(target_modules, str):
        pattern = re.compile(target_modules)
        names = [n for n, _ in model.named_modules() if n and pattern.fullmatch(n)]
    else:
        wanted = list(target_modules)
        if not wanted or not all(isinstance(t, str) and t for t in wanted):
            raise ValueError(f"target_modules must hold non-empty names, got {target_modules!r}.")
        names = [
            n
            for n, _ in model.named_modules()
            if n and any(n == t or n.endswith("." + t) for t in wanted)
        ]
    if not names:
        raise ValueError(
            f"target_modules={target_modules!r} matched no module. Adaptable (Linear/Conv1D) "
            f"modules: {_summarise(adaptable_module_names(model))}."
        )
    modules = dict(model.named_modules())
    for n in names:
        if isinstance(modules[n], FactoredAdapter) or _is_peft_lora(modules[n]):
            raise ValueError(
                f"{n} already carries an adapter; apply_adapter once per model "
                "(load a fresh base model to start over)."
            )
        if not isinstance(modules[n], SUPPORTED_LAYERS):
            raise TypeError(
                f"{n} is a {type(modules[n]).__name__}; adapters wrap only Linear or Conv1D. "
                f"Adaptable modules: {_summarise(adaptable_module_names(model))}."
            )
    return names


def _is_peft_lora(module: nn.Module) -> bool:
    return hasattr(module, "lora_A")


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def fused_split(name: str, split_fused: bool) -> int:
    """How many output blocks the adapter on ``name`` gets: 3 for fused Q/K/V when asked, else 1."""
    return FUSED_QKV.get(name.rsplit(".", 1)[-1], 1) if split_fused else 1


def apply_adapter(
    model: nn.Module,
    method: str = "curlora",
    rank: int = 16,
    alpha: float = 1.0,
    target_modules: list[str] | str | None = None,
    sampling: str = "inverse",
    seed: int = 0,
    generator: torch.Generator | None = None,
    split_fused: bool = False,
) -> nn.Module:
    """Freeze ``model`` and add adapters of ``method`` to the target layers; returns the model.

    ``curlora``: CURLoRALinear (columns/rows drawn by ``sampling`` from ``generator`` or
    ``seed``). ``svd``: the r×r SVD peer. ``lora``: PEFT's LoRA with the paper's scaling
    x·A·B·alpha (``lora_alpha = alpha·rank``). ``head-only``: freeze only. ``split_fused``
    gives fused Q/K/V layers (GPT-2 ``c_attn``) one adapter per block instead of one overall.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    alpha = check_alpha(alpha)
    model.requires_grad_(False)
    if method == "head-only":
        return model
    names = resolve_targets(model, target_modules)
    modules = dict(model.named_modules())
    for n in names:
        W = weight_matrix(modules[n])
        check_rank(rank, W.shape[0] // fused_split(n, split_fused), W.shape[1], f" for {n}")
    if method == "lora":
        return inject_peft_lora(model, names, rank, alpha, seed)
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    for n in names:
        split = fused_split(n, split_fused)
        if method == "curlora":
            layer = CURLoRALinear(modules[n], rank, alpha, sampling, generator, split)
        else:
            layer = SVDPeerLinear(modules[n], rank, alpha, split)
        _set_module(model, n, layer)
    model.curlora_config = {
        "method": method,
        "rank": rank,
        "alpha": alpha,
        "sampling": sampling,
        "split_fused": split_fused,
        "targets": names,
    }
    return model


def inject_peft_lora(
    model: nn.Module, names: list[str], rank: int, alpha: float, seed: int
) -> nn.Module:
    """PEFT LoRA on exactly ``names`` with the paper's scaling, initialised from ``seed``."""
    from peft import LoraConfig, inject_adapter_in_model

    modules = dict(model.named_modules())
    config = LoraConfig(
        r=rank,
        # PEFT scales by lora_alpha / r; the paper's baseline is x·A·B·alpha with no /r.
        lora_alpha=alpha * rank,
        lora_dropout=0.0,
        target_modules=names,
        fan_in_fan_out=any(isinstance(modules[n], Conv1D) for n in names),
    )
    # PEFT initialises A with the global RNG; fork it so the seed alone decides A.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model)
    model.curlora_config = {
        "method": "lora",
        "rank": rank,
        "alpha": alpha,
        "sampling": None,
        "split_fused": False,
        "targets": names,
    }
    return model


def adapter_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every adapted layer: our FactoredAdapters and PEFT LoRA layers."""
    for name, module in model.named_modules():
        if isinstance(module, FactoredAdapter) or _is_peft_lora(module):
            yield name, module


def _adapter_parameter_ids(model: nn.Module) -> set[int]:
    ids = set()
    for _, layer in adapter_layers(model):
        if isinstance(layer, FactoredAdapter):
            ids.add(id(layer.U))
        else:
            ids.update(id(p) for n, p in layer.named_parameters() if "lora_" in n)
    return ids


def trainable_parameters(model: nn.Module) -> dict[str, int]:
    """Counts of trainable adapter parameters, other trainable (head) parameters, and frozen ones."""
    adapter_ids = _adapter_parameter_ids(model)
    counts = {"adapter": 0, "head": 0, "frozen": 0}
    for p in model.parameters():  # parameters() already counts tied weights once
        key = "frozen" if not p.requires_grad else "adapter" if id(p) in adapter_ids else "head"
        counts[key] += p.numel()
    return counts


def load_config(config: Any):
    """A transformers config from a config object, a dict, or a shipped name (e.g. 'gpt2-large')."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, PretrainedConfig):
        return config
    if isinstance(config, str):
        path = CONFIG_DIR / f"{config.replace('/', '--')}.json"
        if not path.is_file():
            shipped = sorted(p.stem.replace("--", "/") for p in CONFIG_DIR.glob("*.json"))
            raise ValueError(f"No shipped config {config!r}; shipped: {', '.join(shipped)}.")
        config = json.loads(path.read_text())
    if isinstance(config, dict):
        config = dict(config)
        return AutoConfig.for_model(config.pop("model_type"), **config)
    raise TypeError(f"Expected a transformers config, dict or shipped name, got {type(config)}.")


def meta_model(config: Any) -> nn.Module:
    """A causal LM built from a config on the meta device: shapes only, no memory, no weights."""
    from transformers import AutoModelForCausalLM

    config = load_config(config)
    # Mistral-7B is built in about a second this way.
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_parameters(
    config: Any,
    method: str,
    rank: int = 16,
    target_modules: list[str] | str | None = None,
    split_fused: bool = False,
) -> int:
    """Trainable parameters of ``method`` ('full', 'lora', 'curlora', 'svd') for a config, no weights.

    ``config`` may also be a model (real or meta). Heads are not included, as in the paper's
    §4.5 counts.
    """
    model = config if isinstance(config, nn.Module) else meta_model(config)
    if method == "full":
        return sum(p.numel() for p in model.parameters())
    if method not in ("lora", "curlora", "svd"):
        raise ValueError(f"Unknown method {method!r}; choose full, lora, curlora or svd.")
    modules = dict(model.named_modules())
    total = 0
    for n in resolve_targets(model, target_modules):
        out_f, in_f = weight_matrix(modules[n]).shape
        k = fused_split(n, split_fused)
        check_rank(rank, out_f // k, in_f, f" for {n}")
        total += rank * (out_f + in_f) if method == "lora" else k * rank * rank
    return total

"""Which layers get adapters: per-architecture presets, name/regex matching and the checks around it.

Targets are resolved the way PEFT resolves them (a list matches module-name suffixes, a string
is one regex that must match a whole name), so CURLoRA, the SVD peer and PEFT's LoRA always
adapt exactly the same layers; the errors here name the modules a user could pick instead.
"""

from __future__ import annotations

import re

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

#: Layer types an adapter can wrap: PyTorch Linear (out × in) and GPT-2's Conv1D (in × out).
SUPPORTED_LAYERS = (nn.Linear, Conv1D)
#: Attention projections per architecture (``config.model_type``): the paper adapts Q, K, V.
ATTENTION_PRESETS: dict[str, list[str]] = {
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "k_proj", "v_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj"],
    "gemma2": ["q_proj", "k_proj", "v_proj"],
    "opt": ["q_proj", "k_proj", "v_proj"],
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "gpt_neox": ["query_key_value"],
}
#: Fused Q/K/V projections whose output is Q, K, V one after another: suffix → blocks. (GPT-NeoX's
#: ``query_key_value`` interleaves them per head, so it is not split into three.)
FUSED_QKV = {"c_attn": 3}
#: PEFT's shorthand for every Linear/Conv1D layer but the output (LM) head.
ALL_LINEAR = "all-linear"


def base_layer(module: nn.Module) -> nn.Module:
    """The wrapped layer of an adapter layer (any PEFT tuner layer), or the module itself."""
    return module.get_base_layer() if isinstance(module, BaseTunerLayer) else module


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as an out × in view (transposed for GPT-2 Conv1D, whose weight is in × out)."""
    layer = base_layer(layer)
    if isinstance(layer, Conv1D):
        return layer.weight.T
    if isinstance(layer, nn.Linear):
        return layer.weight
    raise TypeError(
        f"Cannot adapt a {type(layer).__name__}: only torch.nn.Linear and transformers' "
        "Conv1D are supported. Choose target modules of those types."
    )


def adaptable_module_names(model: nn.Module) -> list[str]:
    """Names of every Linear/Conv1D module in ``model`` (the layers an adapter can wrap)."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, SUPPORTED_LAYERS) and not _inside_tuner_layer(model, n)
    ]


def _inside_tuner_layer(model: nn.Module, name: str) -> bool:
    parts = name.split(".")
    return any(
        isinstance(model.get_submodule(".".join(parts[:i])), BaseTunerLayer)
        for i in range(1, len(parts))
    )


def summarise_names(names: list[str]) -> str:
    """Collapse layer numbers so a list of module names stays readable in an error."""
    patterns = dict.fromkeys(re.sub(r"\.\d+\.", ".*.", n) for n in names)
    return ", ".join(patterns) or "(none)"


def default_targets(model: nn.Module) -> list[str]:
    """The attention preset for this model's architecture (``config.model_type``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ATTENTION_PRESETS:
        raise ValueError(
            f"No attention preset for model_type={model_type!r} (presets: "
            f"{', '.join(ATTENTION_PRESETS)}). Pass target_modules explicitly (names or a regex); "
            f"adaptable modules here: {summarise_names(adaptable_module_names(model))}."
        )
    return ATTENTION_PRESETS[model_type]


def matches(name: str, target_modules: list[str] | tuple[str, ...] | set[str] | str) -> bool:
    """Whether module ``name`` is targeted: a full-name regex match, or equal to / ending in a listed name."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def resolve_targets(model: nn.Module, target_modules: list[str] | str | None = None) -> list[str]:
    """Full names of the modules to adapt: suffix match for a list (as PEFT), fullmatch for a
    regex, every Linear/Conv1D but the LM head for ``"all-linear"``."""
    if target_modules is None:
        target_modules = default_targets(model)
    if target_modules == ALL_LINEAR:
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        target_modules = [
            n
            for n in adaptable_module_names(model)
            if head is None or model.get_submodule(n) is not head
        ]
    if not isinstance(target_modules, str):
        wanted = list(target_modules)
        if not wanted or not all(isinstance(t, str) and t for t in wanted):
            raise ValueError(f"target_modules must hold non-empty names, got {target_modules!r}.")
    names = [
        n
        for n, _ in model.named_modules()
        if n and not _inside_tuner_layer(model, n) and matches(n, target_modules)
    ]
    if not names:
        raise ValueError(
            f"target_modules={target_modules!r} matched no module. Adaptable (Linear/Conv1D) "
            f"modules: {summarise_names(adaptable_module_names(model))}."
        )
    for n in names:
        layer = base_layer(model.get_submodule(n))
        if not isinstance(layer, SUPPORTED_LAYERS):
            raise TypeError(
                f"{n} is a {type(layer).__name__}; adapters wrap only Linear or Conv1D. "
                f"Adaptable modules: {summarise_names(adaptable_module_names(model))}."
            )
    return names


def fused_split(name: str, split_fused: bool) -> int:
    """How many output blocks the adapter on ``name`` gets: 3 for fused Q/K/V when asked, else 1."""
    return FUSED_QKV.get(name.rsplit(".", 1)[-1], 1) if split_fused else 1


def check_rank(rank: object, out_features: int, in_features: int, where: str = "") -> int:
    """Return ``rank`` if it is a positive int no larger than min(out, in), else raise."""
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be a positive int, got {rank!r} ({type(rank).__name__}).")
    limit = min(out_features, in_features)
    if not 1 <= rank <= limit:
        raise ValueError(
            f"rank={rank} is out of range{where}: a {out_features}×{in_features} weight allows "
            f"1 ≤ rank ≤ {limit}. Lower the rank or choose larger target layers."
        )
    return rank


def check_targets_rank(
    model: nn.Module, names: list[str], rank: int, split_fused: bool = False
) -> None:
    """Raise a clear error, before any layer is touched, if ``rank`` does not fit one of ``names``."""
    for n in names:
        out_f, in_f = weight_matrix(model.get_submodule(n)).shape
        check_rank(rank, out_f // fused_split(n, split_fused), in_f, f" for {n}")

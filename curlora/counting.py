"""Counting parameters: what trains in a model, and what each method would train in a config.

Configs of the models the paper discusses ship with the package (``curlora/resources/configs``),
so counts for Mistral-7B or GPT-2-large need no weights and no network.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from curlora.methods import REGISTRY, adapter_methods
from curlora.targets import check_rank, fused_split, resolve_targets, weight_matrix

#: The count of every parameter of the model (the paper's "full model", §4.5), beside the methods.
WHOLE_MODEL = "model"


def trainable_parameters(model: nn.Module) -> dict[str, int]:
    """Counts of trainable adapter parameters, other trainable (head) parameters, and frozen ones."""
    adapter_ids = {
        id(p)
        for m in model.modules()
        if isinstance(m, BaseTunerLayer)
        for n, p in m.named_parameters()
        if not n.startswith("base_layer.")
    }
    counts = {"adapter": 0, "head": 0, "frozen": 0}
    for p in model.parameters():  # parameters() already counts tied weights once
        key = "frozen" if not p.requires_grad else "adapter" if id(p) in adapter_ids else "head"
        counts[key] += p.numel()
    return counts


def shipped_configs() -> list[str]:
    """Names of the model configs that ship with the package (e.g. 'gpt2-large')."""
    folder = resources.files("curlora") / "resources" / "configs"
    return sorted(p.name.removesuffix(".json").replace("--", "/") for p in folder.iterdir())


def load_config(config: Any):
    """A transformers config from a config object, a dict, or a shipped name (e.g. 'gpt2-large')."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, PretrainedConfig):
        return config
    if isinstance(config, str):
        path = (
            resources.files("curlora")
            / "resources"
            / "configs"
            / f"{config.replace('/', '--')}.json"
        )
        if path.is_file():
            config = json.loads(path.read_text())
        else:
            try:  # a model folder, or a hub id in the local cache or online
                return AutoConfig.from_pretrained(config)
            except OSError as err:
                raise ValueError(
                    f"No config for {config!r}: not shipped ({', '.join(shipped_configs())}), not a "
                    "model folder, and not reachable on the hub. Pass a transformers config "
                    "(AutoConfig.from_pretrained(...)) or a dict instead."
                ) from err
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
    """Trainable parameters of ``method`` (a registered adapter method such as 'curlora', 'lora'
    or 'full', or 'model': every parameter of the model) for a config, no weights.

    ``config`` may also be a model (real or meta). Heads are not included, as in the paper's
    §4.5 counts.
    """
    model = config if isinstance(config, nn.Module) else meta_model(config)
    if method == WHOLE_MODEL:
        return sum(p.numel() for p in model.parameters())
    if method not in adapter_methods():
        raise ValueError(
            f"Unknown method {method!r}; choose {WHOLE_MODEL} (every parameter) or one of "
            f"{', '.join(adapter_methods())}."
        )
    entry = REGISTRY[method]
    total = 0
    for n in resolve_targets(model, target_modules):
        out_f, in_f = weight_matrix(model.get_submodule(n)).shape
        k = fused_split(n, split_fused and entry.splits_fused)
        check_rank(rank, out_f // k, in_f, f" for {n}")
        total += entry.trainable(out_f, in_f, rank, k)
    return total


def parameter_table(
    configs: list[str],
    ranks: list[int],
    methods: tuple[str, ...] = (WHOLE_MODEL, "lora", "curlora", "svd"),
) -> list[dict]:
    """Trainable parameters per shipped config, method and rank (Q/K/V preset, heads excluded)."""
    rows = []
    for config in configs:
        model = meta_model(config)  # built once per config, counted many times
        whole = count_parameters(model, WHOLE_MODEL)
        for rank in ranks:
            for method in methods:
                n = count_parameters(model, method, rank)
                rows.append(
                    {
                        "model": config,
                        "rank": rank,
                        "method": method,
                        "trainable": n,
                        "share_of_model": n / whole,
                    }
                )
    return rows


def head_parameters(configs: list[str], n_labels: list[int]) -> list[dict]:
    """Parameters of a task head (hidden → labels, with bias) per config: counted apart from adapters."""
    rows = []
    for config in configs:
        c = load_config(config)
        hidden = getattr(c, "hidden_size", None) or c.n_embd
        rows.extend({"model": config, "labels": k, "head": hidden * k + k} for k in n_labels)
    return rows

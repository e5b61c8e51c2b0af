"""Full fine-tuning of the targeted matrices, as a PEFT method (``peft_type="FULL"``).

Each targeted W learns a dense ΔW, from zero, added to the frozen W. Adam's updates of ΔW are
those it would make to W itself (the gradient is the same and there is no weight decay), so this
is full fine-tuning of those matrices; keeping ΔW apart lets the model be saved, merged, disabled
and analysed like every other arm. It is the upper anchor of the comparison: every entry of the
adapted matrices trains (Biderman et al. 2024 compare LoRA against full fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn
from transformers.pytorch_utils import Conv1D

from curlora.cur import check_weight
from curlora.targets import weight_matrix
from curlora.tuners.model import FactoredModel


@dataclass
class FullConfig(PeftConfig):
    """Full fine-tuning of the targeted Linear/Conv1D matrices: a dense ΔW each, from zero."""

    target_modules: list[str] | str | None = field(
        default=None,
        metadata={
            "help": "Module names (suffix match) or one regex (full match); None = the "
            "architecture's Q/K/V preset (curlora.targets.ATTENTION_PRESETS)."
        },
    )
    modules_to_save: list[str] | None = field(
        default=None,
        metadata={"help": "Other modules to train and save, e.g. a classification head."},
    )

    PEFT_TYPE = "FULL"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = self.PEFT_TYPE
        if isinstance(self.target_modules, (set, tuple)):
            # Sorted so the saved adapter_config.json is the same on every run.
            self.target_modules = sorted(self.target_modules)


class FullLayer(nn.Module, BaseTunerLayer):
    """``base(x) + x ΔWᵀ`` for each active adapter; ΔW (out × in, from zero) is what trains."""

    adapter_layer_names = ("full_delta",)
    other_param_names = ()

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: FullConfig,
        target_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        BaseTunerLayer.__init__(self)
        self.base_layer = base_layer
        self.full_delta = nn.ParameterDict()
        self.merged_adapters: list[str] = []
        self._disable_adapters = False
        self.kwargs = kwargs
        self.out_features, self.in_features = weight_matrix(base_layer).shape
        self.update_layer(adapter_name, config, target_name)

    def update_layer(self, adapter_name: str, config: FullConfig, target_name: str) -> None:
        """Add the adapter ``adapter_name``: ΔW = 0, so outputs are unchanged."""
        if self.merged:
            raise RuntimeError(
                f"{target_name}: cannot add adapter {adapter_name!r} while {self.merged_adapters} "
                "is merged. Call unmerge_adapter() first."
            )
        W = weight_matrix(self.base_layer).detach()
        check_weight(W)
        self.full_delta[adapter_name] = nn.Parameter(torch.zeros_like(W))
        self.set_adapter(self.active_adapters)

    def delta_matrix(self, adapter_name: str) -> torch.Tensor:
        """ΔW of one adapter as an out × in matrix."""
        return self.full_delta[adapter_name]

    def get_delta_weight(self, adapter_name: str) -> torch.Tensor:
        """ΔW in the base weight's own layout (PEFT's convention: in × out for Conv1D)."""
        delta = self.delta_matrix(adapter_name)
        return delta.T if isinstance(self.base_layer, Conv1D) else delta

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        out = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return out
        for name in self.active_adapters:
            if name in self.full_delta:
                delta = self.full_delta[name]
                out = out + F.linear(self._cast_input_dtype(x, delta.dtype), delta).to(out.dtype)
        return out

    @torch.no_grad()
    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Add the active (or named) adapters' ΔW into the base weight."""
        W = weight_matrix(self.base_layer)
        for name in check_adapters_to_merge(self, adapter_names):
            if name not in self.full_delta:
                continue
            delta = self.delta_matrix(name).to(W.dtype)
            if safe_merge and not torch.isfinite(W + delta).all():
                raise ValueError(f"Merging adapter {name!r} gives NaN/Inf weights; it is broken.")
            W += delta
            self.merged_adapters.append(name)

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract every merged ΔW again (the base weight up to floating-point rounding)."""
        W = weight_matrix(self.base_layer)
        while self.merged_adapters:
            W -= self.delta_matrix(self.merged_adapters.pop()).to(W.dtype)


class FullModel(FactoredModel):
    """Full fine-tuning of the targeted matrices as a PEFT tuner (``peft_type="FULL"``)."""

    prefix = "full_"
    tuner_layer_cls = FullLayer

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
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from curlora.cur import check_weight
from curlora.targets import weight_matrix
from curlora.tuners.layer import DeltaLayer
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


class FullLayer(DeltaLayer):
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

    def holds(self, adapter_name: str) -> bool:
        return adapter_name in self.full_delta

    def _add_update(self, out: torch.Tensor, x: torch.Tensor, adapter_name: str) -> torch.Tensor:
        delta = self.full_delta[adapter_name]
        return out + F.linear(self._cast_input_dtype(x, delta.dtype), delta).to(out.dtype)


class FullModel(FactoredModel):
    """Full fine-tuning of the targeted matrices as a PEFT tuner (``peft_type="FULL"``)."""

    prefix = "full_"
    tuner_layer_cls = FullLayer

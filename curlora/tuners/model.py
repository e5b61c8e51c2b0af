"""The PEFT tuners of CURLoRA and the SVD peer (and full fine-tuning, ``curlora.tuners.full``):
which modules get a layer, and how it is put there."""

from __future__ import annotations

from typing import ClassVar

from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from curlora.targets import (
    ALL_LINEAR,
    ATTENTION_PRESETS,
    SUPPORTED_LAYERS,
    default_targets,
    resolve_targets,
)
from curlora.tuners.layer import CURLoRALayer, SVDPeerLayer


class FactoredModel(BaseTuner):
    """Injects the tuner's layer (``tuner_layer_cls``: a ``FactoredLayer``, or full
    fine-tuning's dense layer) into each targeted Linear/Conv1D module of a model."""

    tuner_layer_cls: ClassVar[type[nn.Module]]
    target_module_mapping = ATTENTION_PRESETS

    def _prepare_adapter_config(self, peft_config: PeftConfig, model_config: dict):
        if peft_config.target_modules is None:
            peft_config.target_modules = default_targets(self.model)
        # Resolve once up front for errors that name the modules a user could pick instead;
        # "all-linear" becomes the explicit names, so the saved config says what was adapted.
        names = resolve_targets(self.model, peft_config.target_modules)
        if peft_config.target_modules == ALL_LINEAR:
            peft_config.target_modules = names
        return peft_config

    def _create_and_replace(
        self,
        peft_config: PeftConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **kwargs,
    ) -> None:
        if isinstance(target, self.tuner_layer_cls):
            target.update_layer(adapter_name, peft_config, current_key)
            return
        if not isinstance(target, SUPPORTED_LAYERS):
            raise TypeError(
                f"{current_key} is a {type(target).__name__}; {self.prefix.rstrip('_')} adapters "
                "wrap only torch.nn.Linear or transformers' Conv1D."
            )
        layer = self.tuner_layer_cls(target, adapter_name, peft_config, current_key)
        if adapter_name not in self.active_adapters:
            layer.requires_grad_(False)
        self._replace_module(parent, target_name, layer, target)


class CURLoRAModel(FactoredModel):
    """CURLoRA as a PEFT tuner (``peft_type="CURLORA"``)."""

    prefix = "curlora_"
    tuner_layer_cls = CURLoRALayer


class SVDPeerModel(FactoredModel):
    """The r×r SVD peer as a PEFT tuner (``peft_type="SVDPEER"``)."""

    prefix = "svdpeer_"
    tuner_layer_cls = SVDPeerLayer

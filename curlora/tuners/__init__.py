"""CURLoRA, the r×r SVD peer and full fine-tuning of the adapted matrices as PEFT methods,
registered with PEFT when this package is imported.

After ``import curlora``: ``peft.get_peft_model(model, CURLoRAConfig(r=16))``,
``save_pretrained``, ``PeftModel.from_pretrained``, ``merge_and_unload``, named adapters.
"""

from __future__ import annotations

from peft.mapping import (
    PEFT_TYPE_TO_CONFIG_MAPPING,
    PEFT_TYPE_TO_PREFIX_MAPPING,
    PEFT_TYPE_TO_TUNER_MAPPING,
)

from curlora.tuners.config import CURLoRAConfig, FactoredConfig, SVDPeerConfig
from curlora.tuners.full import FullConfig, FullLayer, FullModel
from curlora.tuners.layer import CURLoRALayer, FactoredLayer, SVDPeerLayer
from curlora.tuners.model import CURLoRAModel, FactoredModel, SVDPeerModel

__all__ = [
    "CURLoRAConfig",
    "CURLoRALayer",
    "CURLoRAModel",
    "FactoredConfig",
    "FactoredLayer",
    "FactoredModel",
    "FullConfig",
    "FullLayer",
    "FullModel",
    "SVDPeerConfig",
    "SVDPeerLayer",
    "SVDPeerModel",
]


def register() -> None:
    """Add the methods to PEFT's mapping tables under their string ``peft_type`` (idempotent).

    ``peft.utils.register_peft_method`` accepts only members of PEFT's closed enum, so the
    tables are filled directly: the route PEFT's maintainers accept for outside methods
    (issue #2634 / PR #2635) and that save/load check since 0.21 (PR #3490).
    """
    for config_cls, model_cls in (
        (CURLoRAConfig, CURLoRAModel),
        (SVDPeerConfig, SVDPeerModel),
        (FullConfig, FullModel),
    ):
        PEFT_TYPE_TO_CONFIG_MAPPING[config_cls.PEFT_TYPE] = config_cls
        PEFT_TYPE_TO_TUNER_MAPPING[config_cls.PEFT_TYPE] = model_cls
        PEFT_TYPE_TO_PREFIX_MAPPING[config_cls.PEFT_TYPE] = model_cls.prefix


register()

"""CURLoRA (Fawi 2024, arXiv 2408.14572) for continual fine-tuning, with honest controls.

Importing the package registers CURLoRA and the r×r SVD peer as PEFT methods.
"""

from curlora.counting import count_parameters, trainable_parameters
from curlora.inject import adapter_config, apply_adapter, peft_model
from curlora.targets import resolve_targets
from curlora.tuners import CURLoRAConfig, CURLoRALayer, SVDPeerConfig, SVDPeerLayer

__all__ = [
    "CURLoRAConfig",
    "CURLoRALayer",
    "SVDPeerConfig",
    "SVDPeerLayer",
    "adapter_config",
    "apply_adapter",
    "count_parameters",
    "peft_model",
    "resolve_targets",
    "trainable_parameters",
]
__version__ = "0.2.0"

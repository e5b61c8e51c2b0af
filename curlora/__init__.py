"""CURLoRA (Fawi 2024, arXiv 2408.14572) for continual fine-tuning, with honest controls."""

from curlora.inject import (
    apply_adapter,
    count_parameters,
    resolve_targets,
    trainable_parameters,
)
from curlora.io import load_adapter, save_adapter
from curlora.layers import CURLoRALinear, SVDPeerLinear

__all__ = [
    "CURLoRALinear",
    "SVDPeerLinear",
    "apply_adapter",
    "count_parameters",
    "load_adapter",
    "resolve_targets",
    "save_adapter",
    "trainable_parameters",
]
__version__ = "0.1.0"

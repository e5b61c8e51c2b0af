"""Mixed precision for CPU runs: autocast, and frozen weights cast once instead of on every call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from curlora.targets import SUPPORTED_LAYERS

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def mixed_precision(device: torch.device, autocast: str | None):
    """``torch.autocast`` for ``autocast`` (a DTYPES name), or a no-op context when None."""
    return torch.autocast(device.type, dtype=DTYPES.get(autocast), enabled=autocast is not None)


class FrozenCast:
    """Low-precision copies of a model's frozen Linear/Conv1D weights, swapped in while active.

    Under autocast every matrix product casts its fp32 weight to bf16 on each call; a frozen
    weight gives the same bf16 tensor every time, so casting it once is exact (the same
    rounding) and saves the work. The fp32 tensors stay for everything else (norms, merging).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype | None):
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if dtype is None:
            return
        tied = {
            id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
        }
        for module in model.modules():
            tensors = []
            if isinstance(module, SUPPORTED_LAYERS):
                tensors = [t for t in (module.weight, module.bias) if t is not None]
            elif isinstance(module, BaseTunerLayer):
                # The frozen factors (CURLoRA's C and R) feed matrix products as well.
                tensors = [
                    b
                    for n, b in module.named_buffers(recurse=True)
                    if b.is_floating_point() and not n.startswith("base_layer.")
                ]
            for t in tensors:
                # Embedding-tied weights (a tied LM head) feed lookups outside autocast: keep them.
                if t.requires_grad or id(t) in tied or not t.is_floating_point():
                    continue
                self.pairs.append((t, t.data, t.data.to(dtype)))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Swap the low-precision copies in for the duration of the block."""
        for t, _, low in self.pairs:
            t.data = low
        try:
            yield
        finally:
            for t, full, _ in self.pairs:
                t.data = full

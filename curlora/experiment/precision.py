"""Mixed precision: which precision is faster on this machine, autocast, and frozen weights cast once."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from curlora.targets import SUPPORTED_LAYERS

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: bf16 autocast is chosen only where bf16 matrix products run at least this many times the fp32
#: rate. A margin, not a measured break-even: autocast adds casts of activations and rounds
#: more, so near parity fp32, the reference precision, is kept. The two machines measured
#: (benchmarks/NOTES.md) sit far from it: bf16 at 2.1–2.9× fp32 on an AMD EPYC, 0.5× on an
#: Intel Xeon without AMX.
BF16_MIN_GAIN = 1.25


#: The probe's product sizes: it grows a product until one takes PROBE_TARGET_SECONDS, never past
#: 2048² (the size of every earlier measurement, so machines measured before choose alike).
PROBE_SIZES = (128, 256, 512, 1024, 2048)
PROBE_TARGET_SECONDS = 0.05
#: Time allowed per precision. Where a precision is emulated (bf16 on a CPU without AVX-512 BF16
#: multiplies at ~1 GFLOP/s against ~100 in fp32), timing it at 2048² would take minutes.
PROBE_BUDGET_SECONDS = 0.8


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The timed operation (a module-level name, so a test can stand in a slow precision)."""
    return a @ b


def product_rate(dtype: torch.dtype, budget: float = PROBE_BUDGET_SECONDS) -> float:
    """GFLOP/s of square matrix products in ``dtype``, measured within about ``budget`` seconds."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    g = torch.Generator().manual_seed(0)

    def timed(a: torch.Tensor, b: torch.Tensor) -> float:
        sync()
        start = time.perf_counter()
        _product(a, b)
        sync()
        return time.perf_counter() - start

    spent = 0.0
    for n in PROBE_SIZES:
        a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
        if n == PROBE_SIZES[0]:
            spent += timed(a, b)  # the first product pays for thread start-up: not a rate
        times = [timed(a, b)]
        spent += times[0]
        # Grow while products are too short to time well and the next (8× the work) fits.
        if times[0] >= PROBE_TARGET_SECONDS or spent + 8 * times[0] > budget:
            break
    while len(times) < 5 and spent + times[0] <= budget:
        times.append(timed(a, b))
        spent += times[-1]
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


@functools.lru_cache(maxsize=1)
def matmul_rate() -> dict[str, float]:
    """This process's matrix-product rates (GFLOP/s) in fp32 and bf16, in about two seconds at most."""
    return {name: round(product_rate(DTYPES[name]), 1) for name in ("float32", "bfloat16")}


def fastest_autocast(rates: dict[str, float]) -> str | None:
    """``"bfloat16"`` where ``rates`` (``matmul_rate``'s) show bf16 clearly faster than fp32, else None."""
    return "bfloat16" if rates["bfloat16"] >= BF16_MIN_GAIN * rates["float32"] else None


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

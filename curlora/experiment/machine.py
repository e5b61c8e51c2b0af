"""This machine: its matrix-product rates, measured once and shared, the precision they choose,
and the environment every result records.

Every process that runs an experiment (the runner, its workers, notebook kernels, the command
line, the tests) reads one stored measurement per kind of machine, kept in the cache
(``$CURLORA_CACHE/machine-precision/``, not among results: it is a fact about the machine, not a
run's). The first process to need it measures it (about two seconds: ``precision.matmul_rate``)
under a lock; the others wait for it and read it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from curlora.experiment import stages
from curlora.experiment.precision import fastest_autocast, matmul_rate
from curlora.storage import cache_root, safe_name

#: Environment variable that fixes the precision instead: ``bfloat16`` or ``float32``.
AUTOCAST_ENV = "CURLORA_AUTOCAST"


def machine_name() -> str:
    """The arithmetic that decides the choice: the processor (or GPU) and the torch build."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
    else:
        cpuinfo = Path("/proc/cpuinfo")
        lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
        models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        device = models[0] if models else platform.processor() or platform.machine()
    return f"{device} torch-{torch.__version__}"


def machine_measurement() -> dict:
    """This machine's stored measurement: ``machine``, ``matmul_gflops`` and the faster ``autocast``.

    Measured once per kind of machine, so every process of a run and every later session choose
    alike: a measurement taken under load can never split one design across two precisions.
    """
    machine = machine_name()
    path = cache_root() / "machine-precision" / f"{safe_name(machine)}.json"

    def measure() -> dict:
        rates = matmul_rate()
        return {"machine": machine, "matmul_gflops": rates, "autocast": fastest_autocast(rates)}

    return stages.shared_json(path, measure, required=("matmul_gflops", "autocast"))


def machine_autocast() -> str | None:
    """This machine's precision for exploring: ``"bfloat16"`` (autocast) or None (fp32).

    ``$CURLORA_AUTOCAST`` fixes it; otherwise the stored measurement decides.
    """
    chosen = os.environ.get(AUTOCAST_ENV)
    if chosen:
        if chosen not in ("bfloat16", "float32"):
            raise ValueError(
                f"{AUTOCAST_ENV}={chosen!r} is not a precision; set it to bfloat16 (autocast) or "
                "float32, or unset it to use this machine's faster one."
            )
        return None if chosen == "float32" else chosen
    return machine_measurement()["autocast"]


def describe_machine() -> str:
    """One line: this machine's measured rates and the precision the cpu preset runs at."""
    measured = machine_measurement()
    rates = measured["matmul_gflops"]
    chosen = machine_autocast() or "float32"
    how = "fixed by " + AUTOCAST_ENV if os.environ.get(AUTOCAST_ENV) else "the faster one here"
    return (
        f"machine: {measured['machine']}; matrix products fp32 {rates['float32']:g}, "
        f"bf16 {rates['bfloat16']:g} GFLOP/s; precision {chosen} ({how})"
    )


def environment() -> dict:
    """Package versions and the machine a result was computed on (with its stored matrix-product
    rates: timing them again in every process would cost each one its probe)."""
    import peft
    import transformers

    from curlora import __version__

    return {
        "matmul_gflops": machine_measurement()["matmul_gflops"],
        "curlora": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }

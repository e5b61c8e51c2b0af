"""Named starting points for a run: the paper's settings, and sizes that fit a 2-core CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from curlora.experiment import stages
from curlora.experiment.precision import fastest_autocast, matmul_rate
from curlora.experiment.spec import ExperimentSpec
from curlora.storage import results_root, safe_name

#: The paper's §6 settings shared by both of its models (hub data, single-pass perplexity).
_PAPER_COMMON = dict(
    tasks=("glue/mrpc", "glue/sst2", "sentiment140-paper"),
    rank=16,
    val_size=0,
    eval_size=1000,
    eval_batch_size=50,
    epochs=3,
    lr=2.5e-4,
    head_lr=None,
    schedule="cosine",
    warmup_steps=500,
    corpus="wikitext-2",
    ppl_mode="single",
    ppl_windows=None,
    attention="sdpa",
)
#: ``paper-*`` follow the paper's §6 (hub models and data, a GPU). ``cpu`` is the per-run size
#: of the default notebook profile; ``evidence`` the one whose committed results the README
#: reports (larger perplexity sample). ``smoke`` runs in seconds on a tiny random model.
PRESETS: dict[str, ExperimentSpec] = {
    "smoke": ExperimentSpec(
        model="tiny-llama",
        tasks=("wiki-pairs", "movie-snippets"),
        rank=4,
        train_size=32,
        val_size=16,
        eval_size=16,
        batch_size=8,
        eval_batch_size=16,
        max_length=32,
        lr=1e-2,
        head_lr=None,
        ppl_windows=4,
        ppl_max_length=64,
    ),
    # Precision: ``autocast`` here is a placeholder; ``preset`` sets this machine's (see
    # MACHINE_PRECISION). 2,048 tokens of perplexity before and after the sequence, as the paper
    # measures it (its noise is measured in notebook 04); after every task too would double each
    # adapter run's perplexity time for one intermediate point.
    "cpu": ExperimentSpec(autocast=None, ppl_windows=4, ppl_stages="final"),
    # 16,384 tokens of perplexity, before and after the sequence (as the paper measures it).
    # Always bf16 autocast: its committed results (results/evidence) were computed so.
    "evidence": ExperimentSpec(autocast="bfloat16", ppl_windows=32, ppl_stages="final"),
    "paper-mistral": ExperimentSpec(
        model="mistralai/Mistral-7B-v0.3",
        train_size=1000,
        batch_size=8,
        max_length=512,
        dtype="bfloat16",
        ppl_max_length=32768,
        **_PAPER_COMMON,
    ),
    "paper-gpt2": ExperimentSpec(
        model="gpt2-large",
        train_size=5000,
        batch_size=32,
        max_length=256,
        ppl_max_length=1024,
        **_PAPER_COMMON,
    ),
}


#: Presets for exploring on the machine at hand: their precision is the machine's faster one
#: (a train step under bf16 autocast took 0.59× the fp32 time on an AMD EPYC; on an Intel Xeon
#: without AMX whole runs took 1.69× as long: benchmarks/NOTES.md). The cpu profile's
#: results differ across kinds of CPU anyway, as their kernels round differently.
MACHINE_PRECISION = ("cpu",)
#: Environment variable that fixes that precision instead: ``bfloat16`` or ``float32``.
AUTOCAST_ENV = "CURLORA_AUTOCAST"


def machine_autocast() -> str | None:
    """This machine's precision for the cpu preset: ``"bfloat16"`` (autocast) or None (fp32).

    Measured once per kind of machine and kept beside the results, so every process of a run
    (the runner, its workers, each notebook's kernel) and every later session choose alike; a
    measurement taken under load can then never split one design across two precisions.
    """
    chosen = os.environ.get(AUTOCAST_ENV)
    if chosen:
        if chosen not in ("bfloat16", "float32"):
            raise ValueError(
                f"{AUTOCAST_ENV}={chosen!r} is not a precision; set it to bfloat16 (autocast) or "
                "float32, or unset it to use this machine's faster one."
            )
        return None if chosen == "float32" else chosen
    machine = _machine()
    path = results_root() / "machine-precision" / f"{safe_name(machine)}.json"

    def measure() -> dict:
        rates = matmul_rate()
        return {"machine": machine, "matmul_gflops": rates, "autocast": fastest_autocast(rates)}

    return stages.shared_json(path, measure, required=("autocast",))["autocast"]


def _machine() -> str:
    """The arithmetic that decides the choice: the processor (or GPU) and the torch build."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
    else:
        cpuinfo = Path("/proc/cpuinfo")
        lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
        models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        device = models[0] if models else platform.processor() or platform.machine()
    return f"{device} torch-{torch.__version__}"


def preset(name: str, **changes) -> ExperimentSpec:
    """A preset spec, optionally with fields changed (the cpu preset at this machine's precision)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    if name in MACHINE_PRECISION and "autocast" not in changes:
        changes["autocast"] = machine_autocast()
    return PRESETS[name].replace(**changes)

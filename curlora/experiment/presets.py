"""Named starting points for a run: the paper's settings, and sizes that fit a 2-core CPU."""

from __future__ import annotations

import os

from curlora.experiment.machine import AUTOCAST_ENV, machine_autocast
from curlora.experiment.spec import ExperimentSpec

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
    # bf16 autocast, as its committed results (results/evidence) were computed; on a machine
    # that only emulates bf16, CURLORA_AUTOCAST=float32 recomputes it in fp32 (keyed apart).
    "evidence": ExperimentSpec(autocast="bfloat16", ppl_windows=32, ppl_stages="final"),
    # The confirmatory study (curlora/resources/analysis_plan.toml): the evidence protocol at a
    # budget where adapters learn — 600 training examples per task, one epoch (75 steps), where
    # the pilot put LoRA r16 and CURLoRA 7–10 points over head-only on validation
    # (benchmarks/pilot.py, benchmarks/NOTES.md). fp32, so any CPU recomputes it alike.
    "study": ExperimentSpec(
        autocast=None, train_size=600, epochs=1, ppl_windows=32, ppl_stages="final"
    ),
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


def preset(name: str, **changes) -> ExperimentSpec:
    """A preset spec, optionally with fields changed: the cpu preset at this machine's precision,
    any preset at the one ``$CURLORA_AUTOCAST`` names."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    if "autocast" not in changes and (name in MACHINE_PRECISION or os.environ.get(AUTOCAST_ENV)):
        changes["autocast"] = machine_autocast()
    return PRESETS[name].replace(**changes)

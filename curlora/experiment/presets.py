"""Named starting points for a run: the paper's settings, and sizes that fit a 2-core CPU."""

from __future__ import annotations

from curlora.experiment.precision import fastest_autocast
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
    # Precision: whichever this machine runs faster (``preset`` measures it; see FASTEST): bf16
    # autocast ran cpu-preset runs 1.7× faster than fp32 on an AMD EPYC and 1.7× slower on an
    # Intel Xeon without AMX (benchmarks/NOTES.md). 2,048 tokens of perplexity before and after
    # the sequence, as the paper measures it (its noise is measured in notebook 04); after every
    # task too would double each adapter run's perplexity time for one intermediate point.
    "cpu": ExperimentSpec(autocast="bfloat16", ppl_windows=4, ppl_stages="final"),
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


#: Presets for exploring on the machine at hand: their precision is this machine's faster one
#: (``fastest_autocast``), unless ``autocast`` is given. Results differ across CPUs anyway (their
#: kernels round differently), so nothing reproducible is lost; the run records its choice.
FASTEST = ("cpu",)


def preset(name: str, **changes) -> ExperimentSpec:
    """A preset spec, optionally with fields changed (the ``cpu`` preset's precision measured here)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    if name in FASTEST and "autocast" not in changes:
        changes["autocast"] = fastest_autocast()
    return PRESETS[name].replace(**changes)

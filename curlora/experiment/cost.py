"""What runs cost before they start: their arithmetic, counted from the specs, and the time here.

A forward pass costs about 2 FLOPs per weight a token passes through; training through frozen
weights adds the backward pass to the inputs (2 more; adapters and heads are a rounding error).
Counting every example at ``max_length`` tokens over-counts padding and truncation; the time
per FLOP measured on whole runs (``RUN_EFFICIENCY``) absorbs that, so the estimate is
work ÷ (measured rate × efficiency), and it scales with the machine's measured rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.spec import ExperimentSpec

#: Work as counted here ÷ (product rate × seconds) on whole runs, from the cpu suite's 19 runs
#: (271 TFLOP counted) on fresh clones: 935 s of experiments in fp32 on an Intel Xeon measured at
#: 283–308 GFLOP/s (1.0), and 1,764 s on an AMD EPYC with AVX2 only measured at 107 (1.43)
#: (benchmarks/NOTES.md). Padding counted as work and elementwise work not run at the product
#: rate roughly cancel; 1.2 puts both machines within about 20% of the estimate.
RUN_EFFICIENCY = 1.2


@lru_cache(maxsize=16)
def forward_weights(model: str) -> tuple[int, int] | None:
    """(weights a token passes through below the LM head, LM-head weights) of a model
    reference, from its config alone; None where the config cannot be had without loading."""
    from curlora.counting import meta_model
    from curlora.models import TINY_MODELS, byte_tokenizer

    try:
        if model in TINY_MODELS:
            with torch.device("meta"):
                lm = TINY_MODELS[model](len(byte_tokenizer()))
        elif model == "smollm2-135m":
            lm = meta_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        elif Path(model).expanduser().is_dir():
            from transformers import AutoConfig

            lm = meta_model(AutoConfig.from_pretrained(Path(model).expanduser()))
        else:
            lm = meta_model(model)
    except (ValueError, OSError):
        return None
    embedding = lm.get_input_embeddings().weight
    head = lm.get_output_embeddings().weight
    body = sum(p.numel() for p in lm.parameters()) - embedding.numel()
    # A head tied to the embedding was not counted in parameters() a second time.
    if head is not embedding:
        body -= head.numel()
    return body, head.numel()


def run_flops(spec: ExperimentSpec, weights: tuple[int, int]) -> float:
    """The arithmetic of one run: training, evaluation after each task, and its perplexity."""
    body, head = weights
    T, L = len(spec.tasks), spec.max_length
    steps = (
        spec.epochs * math.ceil(spec.train_size / spec.batch_size)
        if spec.max_steps is None
        else spec.max_steps
    )
    if spec.method == "head-only":
        # One forward over every example of each task; heads train on the stored features.
        return 2 * body * L * T * (spec.train_size + spec.val_size + spec.eval_size)
    train = 4 * body * L * T * steps * spec.batch_size
    # After task i: the validation and evaluation splits of every task so far.
    evaluated = (spec.val_size + spec.eval_size) * T * (T + 1) // 2
    windows = spec.ppl_windows or 64  # None = the whole corpus: count a typical held-out size
    measurements = T if spec.ppl_stages == "each" else 1
    ppl = 2 * (body + head) * windows * spec.ppl_max_length * measurements
    return train + 2 * body * L * evaluated + ppl


#: Continued training (protocol 2) runs every token through the LM head and a vocabulary-sized
#: softmax, forward and back, which run far below the product rate: a step of 8 × 128 tokens took
#: 12.5 s on an AMD EPYC measured at 74.2 GFLOP/s fp32 (two threads), 2.0× the 4 FLOPs per
#: weight and token counted (benchmarks/NOTES.md, "Protocol 2 pilot").
DOMAIN_TRAIN_SLOWDOWN = 2.0


def domain_run_flops(spec: DomainSpec, weights: tuple[int, int]) -> float:
    """The arithmetic of one continued-training run: training, and its four measurements after
    (the untouched model's are shared by every run, so they are not counted)."""
    body, head = weights
    train = 4 * (body + head) * spec.training_tokens * DOMAIN_TRAIN_SLOWDOWN
    measured = 2 * spec.target_windows * spec.target_length + spec.ppl_max_length * (
        spec.ppl_windows + spec.general_val_windows
    )
    return train + 2 * (body + head) * measured


def estimate_seconds(
    specs: Sequence[ExperimentSpec | DomainSpec], rates: dict[str, float]
) -> float | None:
    """Seconds these runs take on a machine with matrix-product ``rates`` (GFLOP/s, all cores);
    None if a model's size cannot be known from its config."""
    total = 0.0
    for spec in specs:
        weights = forward_weights(spec.model)
        if weights is None:
            return None
        rate = rates["bfloat16" if spec.autocast == "bfloat16" else "float32"]
        flops = (
            domain_run_flops(spec, weights)
            if isinstance(spec, DomainSpec)
            else run_flops(spec, weights)
        )
        total += flops / (rate * 1e9 * RUN_EFFICIENCY)
    return total


def duration(seconds: float) -> str:
    """A person's reading of a duration: '40 s', '25 min', '3.2 h', '6 days'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


#: bf16 products slower than this share of fp32's mean the machine emulates bf16 (an AMD EPYC
#: with AVX2 only: ~1% of fp32; CPUs with AVX-512 BF16 or AMX, and GPUs: 50% or more).
EMULATED_BELOW = 0.1
#: Runs in an emulated precision are refused when they would take this long here.
REFUSE_AFTER_SECONDS = 600


def emulated_precision_error(
    specs: Sequence[ExperimentSpec | DomainSpec], rates: dict[str, float]
) -> str | None:
    """Why these runs should not start here (bf16 that this machine only emulates, at a cost
    that matters), with the way out; None when they can."""
    slow = [s for s in specs if s.autocast == "bfloat16"]
    if not slow or rates["bfloat16"] >= EMULATED_BELOW * rates["float32"]:
        return None
    seconds = estimate_seconds(slow, rates)
    if seconds is not None and seconds < REFUSE_AFTER_SECONDS:
        return None
    in_fp32 = estimate_seconds([s.replace(autocast=None) for s in slow], rates)
    cost = (
        f"about {duration(seconds)} here, against {duration(in_fp32)} in fp32"
        if seconds is not None and in_fp32 is not None
        else f"×{rates['float32'] / rates['bfloat16']:.0f} the time of fp32"
    )
    return (
        f"{len(slow)} run(s) would compute under bf16 autocast, which this machine only emulates "
        f"(bf16 matrix products at {rates['bfloat16']:g} GFLOP/s against fp32's "
        f"{rates['float32']:g}): {cost}. Run them on a machine with native bf16 (a CPU with "
        "AVX-512 BF16 or AMX, or a GPU), or in fp32: set CURLORA_AUTOCAST=float32 (its results "
        "are labelled float32 and cached apart from bf16 ones; add CURLORA_RESULTS=<folder> to "
        "keep them out of a committed results folder)."
    )


def check_precision(specs: Sequence[ExperimentSpec | DomainSpec]) -> None:
    """Raise before these runs start on this machine if they need a precision it only emulates."""
    from curlora.experiment.machine import machine_measurement

    if not any(s.autocast == "bfloat16" for s in specs):
        return  # nothing to decide: no need to read (or take) the machine's measurement
    refusal = emulated_precision_error(specs, machine_measurement()["matmul_gflops"])
    if refusal:
        raise RuntimeError(refusal)

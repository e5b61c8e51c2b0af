"""Timing and peak memory of one configuration at a time, measured in child processes.

Each configuration runs in its own process, built and warmed up one at a time. The measured
repeats go round-robin, one step of each configuration in turn (every other round in reverse
order), so a slow spell of a shared machine hits every configuration alike; ratios are medians
of the per-round ratios. Peak memory is measured afterwards in a fresh process per
configuration with a fixed glibc mmap threshold, so the peak-RSS reading (Linux
/proc/self/clear_refs and VmHWM) is the peak of live tensors rather than allocator history. On
CUDA the same steps run in bf16 with synchronised timing and torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import statistics
import time
from pathlib import Path

import torch
from torch import nn


def _peak_reset() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    return _status("VmRSS")


def _peak_read(baseline: float) -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20 - baseline
    return _status("VmHWM") - baseline


def _status(field: str) -> float:
    return (
        int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    )


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class DenseCURLoRA:
    """The reference implementation's forward: build C·U·R (out × in) every call. Kept only here."""

    @staticmethod
    def patch(model: nn.Module) -> None:
        from curlora.tuners import FactoredLayer

        for module in model.modules():
            if isinstance(module, FactoredLayer):
                module._add_update = lambda out, x, name, m=module: out + x @ m.delta_matrix(name).T


def _resident(model: nn.Module) -> None:
    """Read every weight once, so all are in memory before the peak's baseline is taken.

    A checkpoint loads memory-mapped: pages a step reads first would count as the step's own
    memory (about the model's size in weights outside the embedding, ~420 MiB for SmolLM2-135M
    in fp32), except for a method that had read the model while building (CorDA's calibration).
    """
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.sum()


def _model_step(cfg: dict):
    from curlora import apply_adapter
    from curlora.experiment.heads import TaskModel, new_head
    from curlora.experiment.precision import FrozenCast, mixed_precision
    from curlora.experiment.runner import calibration_ids
    from curlora.methods import method as entry
    from curlora.models import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lm, tok = load_model(cfg["model"], dtype=dtype)
    method = cfg["method"].removesuffix("-dense").removesuffix("-bf16")
    # The bf16 rows train as the evidence preset does: eager attention, frozen weights cast once,
    # autocast; the fp32 rows keep the library defaults (SDPA attention, fp32).
    bf16 = cfg["method"].endswith("-bf16")
    if bf16:
        lm.set_attn_implementation("eager")
    # CorDA reads held-in text before it injects (outside the timed step, as in a run).
    calibration = calibration_ids(tok) if entry(method).before_inject is not None else None
    apply_adapter(lm, method, cfg["rank"], calibration=calibration)
    if cfg["method"].endswith("-dense"):
        DenseCURLoRA.patch(lm)
    lm.to(device)
    head = new_head(lm, 2, seed=0).to(dtype)
    module = TaskModel(lm, head)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(tok) - 1, (cfg["batch"], cfg["tokens"]), generator=g).to(device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (cfg["batch"],), generator=g).to(device)
    cast = FrozenCast(lm, torch.bfloat16 if bf16 else None)
    context = "bfloat16" if bf16 else None
    _resident(module)

    def step():
        with cast.active():
            with mixed_precision(torch.device(device), context):
                logits = module(ids, mask)
            loss = nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # A train step through frozen weights: forward 2 FLOPs per weight per token, backward to
    # the inputs 2 more (no weight gradients); the embedding lookup and adapters are left out.
    # Head-only has nothing to train below the head, so autograd runs no backward through the
    # model: its step is the forward alone.
    weights = (
        sum(p.numel() for p in module.backbone.parameters())
        - lm.get_input_embeddings().weight.numel()
    )
    per_weight = 2 if method == "head-only" else 4
    return step, per_weight * weights * ids.numel()


def _layer_step(cfg: dict):
    from transformers.pytorch_utils import Conv1D

    from curlora import CURLoRAConfig, CURLoRALayer, apply_adapter

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    out_f, in_f = cfg["shape"]
    base = Conv1D(out_f, in_f)
    nn.init.normal_(base.weight, std=0.02)
    holder = nn.Sequential()
    holder.add_module("c_attn", base)
    if cfg["method"] == "lora":
        apply_adapter(holder, "lora", cfg["rank"], target_modules=["c_attn"])
        layer = holder.c_attn
    elif cfg["method"] == "frozen":
        layer = base.requires_grad_(False)
    else:
        base.requires_grad_(False)
        layer = CURLoRALayer(base, "default", CURLoRAConfig(r=cfg["rank"]), "c_attn")
        if cfg["method"] == "curlora-dense":
            DenseCURLoRA.patch(layer)
    layer.to(device, dtype)
    x = torch.randn(
        cfg["batch"], cfg["tokens"], in_f, device=device, dtype=dtype, requires_grad=True
    )
    params = [p for p in layer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4) if params else None

    def step():
        # The input needs a gradient, as inside a network: that is the backward a frozen layer does too.
        layer(x).float().pow(2).mean().backward()
        x.grad = None
        if opt:
            opt.step()
            opt.zero_grad(set_to_none=True)

    return step, None


def _merged_inference(cfg: dict):
    from curlora import apply_adapter
    from curlora.inject import adapter_layers
    from curlora.models import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm, tok = load_model(cfg["model"])
    if cfg["method"] == "merged":
        apply_adapter(lm, "curlora", cfg["rank"])
        for _, layer in adapter_layers(lm):
            with torch.no_grad():
                layer.curlora_U["default"].normal_(std=1e-3)
            layer.merge()
    lm.to(device)
    ids = torch.randint(
        0, len(tok) - 1, (cfg["batch"], cfg["tokens"]), generator=torch.Generator().manual_seed(0)
    ).to(device)

    _resident(lm)

    @torch.no_grad()
    def step():
        lm(input_ids=ids)

    return step, None


def _evaluation(cfg: dict):
    from curlora.data import load_task
    from curlora.experiment.evaluate import predict
    from curlora.experiment.heads import TaskModel, new_head
    from curlora.experiment.precision import mixed_precision
    from curlora.models import load_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lm, tok = load_model(cfg["model"])
    task = load_task("movie-snippets", train_size=8, eval_size=cfg["examples"], seed=0)
    module = TaskModel(lm, new_head(lm, 2, seed=0)).to(device)
    _resident(module)
    # A forward costs ≈ 2 FLOPs per weight outside the embedding per token; attention scores add
    # under 1% at these lengths. Both loops do this same arithmetic (no padding counted).
    weights = (
        sum(p.numel() for p in module.backbone.parameters())
        - lm.get_input_embeddings().weight.numel()
    )
    tokens = sum(len(e["input_ids"]) for e in task.encode(tok, "eval", 64))
    flops = 2 * weights * tokens
    method = cfg["method"].removesuffix("-bf16")
    autocast = None if method == cfg["method"] else "bfloat16"
    if method == "batched":
        encoded = task.encode(tok, "eval", 64)
        return lambda: predict(module, encoded, cfg["batch"], tok.pad_token_id, autocast), flops

    @torch.no_grad()
    def one_by_one():  # how the reference code evaluates: one text per forward
        module.eval()
        for text in task.texts("eval"):
            ids = tok(text, return_tensors="pt", truncation=True, max_length=64).input_ids
            with mixed_precision(device, autocast):
                module(ids.to(device), torch.ones_like(ids, device=device)).argmax(-1)

    return one_by_one, flops


def _matmul_peak(cfg: dict):
    """A large square matrix product: what this machine's GEMM sustains in one dtype."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n, dtype = cfg["size"], getattr(torch, cfg["method"])
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(device, dtype) for _ in range(2))
    return (lambda: a @ b), 2 * n**3


BUILDERS = {
    "model": _model_step,
    "layer": _layer_step,
    "merged": _merged_inference,
    "eval": _evaluation,
    "matmul": _matmul_peak,
}


def _child(cfg: dict, conn) -> None:
    """Build one configuration, warm it up, then time one step per request from the parent."""
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    step, flops = BUILDERS[cfg["kind"]](cfg)
    baseline = _peak_reset()
    for _ in range(cfg["warmup"]):
        step()
    conn.send(flops)
    while conn.recv() == "step":
        _sync()
        start = time.perf_counter()
        step()
        _sync()
        conn.send(time.perf_counter() - start)
    conn.send(_peak_read(baseline))


def _start(cfg: dict, env: dict[str, str] | None = None):
    """Start one configuration's process and wait until it is built and warmed up."""
    ctx = mp.get_context("spawn")
    conn, child_end = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(cfg, child_end))
    saved = dict(os.environ)
    os.environ.update(env or {})  # a spawned child inherits the environment at start
    try:
        proc.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return proc, conn, conn.recv()


def _finish(proc, conn) -> float:
    """Stop a configuration's process; returns its peak extra memory (MiB)."""
    conn.send("stop")
    peak = conn.recv()
    proc.join()
    return peak


# glibc raises its mmap threshold as large blocks are freed and then keeps them in the heap, so
# the RSS peak of a normal process depends on allocation history (±30% between identical runs).
# A fixed threshold returns every block over 64 KiB to the OS on free: the RSS peak is then the
# peak of live tensors, identical run to run, but page faults slow steps, so memory is measured
# in processes of its own and never timed.
EXACT_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def measure(cfgs: list[dict], repeats: int) -> list[dict]:
    """Time ``repeats`` rounds of the configurations in turn, then measure each one's peak memory."""
    running = [_start(cfg) for cfg in cfgs]  # one at a time: only one process computes at once
    times = [[] for _ in cfgs]
    for round_ in range(repeats):
        # Every other round runs in reverse order, so no configuration always follows the same one.
        order = list(zip(running, times, strict=True))
        for (_, conn, _), column in order[:: -1 if round_ % 2 else 1]:
            conn.send("step")
            column.append(conn.recv())
    results = []
    for cfg, (proc, conn, work), column in zip(cfgs, running, times, strict=True):
        _finish(proc, conn)
        proc, conn, _ = _start(cfg, EXACT_MEMORY)
        for _ in range(2):
            conn.send("step")
            conn.recv()
        median = statistics.median(column)
        results.append(
            {
                **cfg,
                "median_s": median,
                "times": column,
                "peak_mb": _finish(proc, conn),
                "gflops": work / median / 1e9 if work else None,
            }
        )
    return results


def paired_ratio(a: dict, b: dict) -> float:
    """Median over rounds of a's step time over b's in the same round."""
    return statistics.median(x / y for x, y in zip(a["times"], b["times"], strict=True))

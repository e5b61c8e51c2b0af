"""CURLoRA vs PEFT LoRA cost, measured side by side in one run; writes benchmarks/RESULTS.md.

    python benchmarks/bench.py            # full run on SmolLM2-135M (minutes)
    python benchmarks/bench.py --quick    # tiny shapes, seconds (CI runs this so it cannot rot)

Each configuration runs in its own process, built and warmed up one at a time. The measured
repeats go round-robin, one step of each configuration in turn (every other round in reverse
order), so a slow spell of a shared machine hits every configuration alike; ratios are medians
of the per-round ratios. Peak memory is measured afterwards in a fresh process per
configuration with a fixed glibc mmap threshold, so the peak-RSS reading (Linux
/proc/self/clear_refs and VmHWM) is the peak of live tensors rather than allocator history. On
CUDA the same steps run in bf16 with synchronised timing and torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------ measured in a child process


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
                module._add_update = lambda out, x, name, m=module: (
                    out + x @ m.get_delta_weight(name).T
                )


def _model_step(cfg: dict):
    from curlora import apply_adapter
    from curlora.continual import TaskModel, new_head
    from curlora.models import load_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lm, tok = load_model(cfg["model"], dtype=dtype)
    method = "curlora" if cfg["method"] == "curlora-dense" else cfg["method"]
    apply_adapter(lm, method, cfg["rank"])
    if cfg["method"] == "curlora-dense":
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

    def step():
        loss = nn.functional.cross_entropy(module(ids, mask).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, None


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

    @torch.no_grad()
    def step():
        lm(input_ids=ids)

    return step, None


def _evaluation(cfg: dict):
    from curlora.continual import TaskModel, evaluate, mixed_precision, new_head
    from curlora.data import load_task
    from curlora.models import load_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lm, tok = load_model(cfg["model"])
    task = load_task("movie-snippets", train_size=8, eval_size=cfg["examples"], seed=0)
    module = TaskModel(lm, new_head(lm, 2, seed=0)).to(device)
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
        return lambda: evaluate(module, task, tok, cfg["batch"], 64, False, autocast), flops

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


# ------------------------------------------------------------------ orchestration and report


def plan(quick: bool) -> dict[str, dict]:
    """Benchmark groups: title → measured repeats and the configurations timed side by side."""
    model = "tiny-llama" if quick else "smollm2-135m"
    common = {"threads": torch.get_num_threads(), "warmup": 1 if quick else 2}
    repeats = 2 if quick else 15
    shape = (192, 64) if quick else (3840, 1280)
    rank, tokens, layer_tokens = (4, 16, 16) if quick else (16, 64, 256)
    size = 512 if quick else 2048

    def group(n: int, methods: tuple[str, ...], **cfg) -> dict:
        return {"repeats": n, "configs": [{**common, **cfg, "method": m} for m in methods]}

    return {
        f"train step, {model} q/k/v r{rank}, batch 8×{tokens}": group(
            repeats,
            ("curlora", "curlora-dense", "lora", "head-only"),
            kind="model",
            model=model,
            rank=rank,
            batch=8,
            tokens=tokens,
        ),
        f"train step, one GPT-2-large-shaped c_attn {shape[1]}→{shape[0]} r{rank}, "
        f"batch 8×{layer_tokens}": group(
            repeats,
            ("curlora", "curlora-dense", "lora", "frozen"),
            kind="layer",
            shape=shape,
            rank=rank,
            batch=8,
            tokens=layer_tokens,
        ),
        f"inference after merge(), {model}, batch 8×{tokens}": group(
            repeats * 3,
            ("base", "merged"),
            kind="merged",
            model=model,
            rank=rank,
            batch=8,
            tokens=tokens,
        ),
        f"matrix product {size}×{size} (this machine's arithmetic ceiling)": group(
            repeats, ("float32", "bfloat16"), kind="matmul", size=size
        ),
        f"evaluation, {model}, movie-snippets": group(
            1 if quick else 5,
            ("batched", "one-by-one", "batched-bf16", "one-by-one-bf16"),
            kind="eval",
            model=model,
            examples=16 if quick else 128,
            batch=16,
        ),
    }


def _dtype(row: dict) -> str:
    return "bfloat16" if row["method"].endswith("-bf16") else "float32"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def report(results: dict[str, list[dict]], quick: bool, suite: dict | None) -> str:
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU, {torch.get_num_threads()} threads"
    )
    lines = [
        f"# Benchmark results{' (quick mode: tiny shapes, not for conclusions)' if quick else ''}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {device}, torch {torch.__version__}; "
        "medians of the measured repeats after warm-up, each configuration in its own process, "
        "repeats interleaved; peak memory from a separate process per configuration (live-tensor "
        "peak, see the script's docstring).",
        "",
    ]
    if not torch.cuda.is_available():
        lines += [
            "CUDA path: skipped (no GPU on this machine); the same script times bf16 with "
            "synchronisation and reads torch.cuda.max_memory_allocated when one is present.",
            "",
        ]
    targets = []
    peak = {
        r["method"]: r["gflops"] for rows in results.values() for r in rows if r["kind"] == "matmul"
    }
    for title, rows in results.items():
        rate = any(r["gflops"] for r in rows)
        lines += [
            f"## {title}",
            "",
            "| configuration | median time (ms) | peak extra memory (MiB) |"
            + (" GFLOP/s |" if rate else ""),
            "|---|---|---|" + ("---|" if rate else ""),
        ]
        for r in rows:
            lines.append(
                f"| {r['method']} | {1000 * r['median_s']:.1f} | {r['peak_mb']:.1f} |"
                + (f" {r['gflops']:.0f} |" if rate else "")
            )
        by = {r["method"]: r for r in rows}
        lines.append("")
        if "lora" in by:
            cur, floor = by["curlora"], by.get("head-only") or by.get("frozen")
            t_ratio = paired_ratio(cur, by["lora"])
            m_ratio = cur["peak_mb"] / max(by["lora"]["peak_mb"], 1e-9)
            per_round = ", ".join(
                f"{a / b:.3f}" for a, b in zip(cur["times"], by["lora"]["times"], strict=True)
            )
            lines += [
                f"- CURLoRA / LoRA: time {t_ratio:.3f} (per round: {per_round}), "
                f"peak memory {m_ratio:.3f}",
                f"- CURLoRA / floor ({floor['method']}): time {paired_ratio(cur, floor):.3f}",
                "- dense C·U·R forward (reference approach) / factored: time "
                f"{paired_ratio(by['curlora-dense'], cur):.2f}",
                "",
            ]
            targets.append(
                (f"{title}: CURLoRA/LoRA step time ≤ 1.00", t_ratio <= 1.0, f"{t_ratio:.3f}")
            )
            targets.append(
                (f"{title}: CURLoRA/LoRA peak memory ≤ 1.00", m_ratio <= 1.0, f"{m_ratio:.3f}")
            )
        if "merged" in by:
            ratio = paired_ratio(by["merged"], by["base"])
            lines += [f"- merged / base inference time: {ratio:.3f}", ""]
            targets.append(
                ("merged/base inference within 2%", abs(ratio - 1) <= 0.02, f"{ratio:.3f}")
            )
        if "batched" in by:
            n = rows[0]["examples"]
            speed = ", ".join(f"{r['method']} {n / r['median_s']:.1f}" for r in rows)
            fp32 = paired_ratio(by["one-by-one"], by["batched"])
            bf16 = paired_ratio(by["one-by-one-bf16"], by["batched-bf16"])
            shipped = paired_ratio(by["one-by-one"], by["batched-bf16"])
            if peak:
                # The GEMM rate bounds any evaluation: batching can at best lift the loop's rate to it.
                lines += [
                    "- share of the matrix-product ceiling: "
                    + ", ".join(f"{r['method']} {r['gflops'] / peak[_dtype(r)]:.0%}" for r in rows),
                    "- so batching can gain at most "
                    f"×{peak['float32'] / by['one-by-one']['gflops']:.1f} in fp32 and "
                    f"×{peak['bfloat16'] / by['one-by-one-bf16']['gflops']:.1f} in bf16 here",
                ]
            lines += [
                f"- examples/s: {speed}",
                f"- batching alone (same precision): ×{fp32:.1f} in fp32, ×{bf16:.1f} under "
                "bf16 autocast",
                f"- the cpu preset's evaluation (batched, bf16 autocast) over the reference's "
                f"loop (one text per forward, fp32): ×{shipped:.1f}",
                "",
            ]
            targets.append(
                (
                    "batched evaluation ≥ 5× per-example loop (same precision: fp32 / bf16)",
                    min(fp32, bf16) >= 5,
                    f"×{fp32:.1f} / ×{bf16:.1f}",
                )
            )
    lines += ["## Notebook suite (cpu profile)", ""]
    if suite:
        lines += [
            f"- first run: {suite['first_s']:.0f} s; cached re-run: {suite['cached_s']:.1f} s",
            "",
        ]
        targets.append(
            (
                "cpu-profile suite ≤ 15 min on first run",
                suite["first_s"] <= 900,
                f"{suite['first_s']:.0f} s",
            )
        )
        targets.append(
            (
                "cpu-profile suite ≤ 60 s cached",
                suite["cached_s"] <= 60,
                f"{suite['cached_s']:.1f} s",
            )
        )
    else:
        lines += [
            "- not measured in this run (pass --suite; it runs the whole cpu profile twice).",
            "",
        ]
    lines += [
        "## Targets",
        "",
        "Where a target is not met, NOTES.md says what the profile showed.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value} | {_verdict(ok)} |" for name, ok, value in targets]
    return "\n".join(lines) + "\n"


def time_suite() -> dict:
    """Run the cpu-profile notebook suite on empty results, then again from the cache.

    Uses $CURLORA_RESULTS when set (it must be empty for an honest first-run time), else a
    fresh temporary folder.
    """
    import subprocess
    import tempfile

    folder = Path(os.environ.get("CURLORA_RESULTS") or tempfile.mkdtemp(prefix="curlora-bench-"))
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} already holds results; a first-run time needs an empty folder.")
    env = {**os.environ, "CURLORA_RESULTS": str(folder)}
    cmd = [sys.executable, "-m", "curlora.notebooks", "run", "--profile", "cpu"]
    timings = {}
    for key in ("first_s", "cached_s"):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True)
        timings[key] = time.perf_counter() - start
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (CI)")
    parser.add_argument(
        "--suite", action="store_true", help="also time the cpu notebook suite (long)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the report (default RESULTS.md, or stdout with --quick)",
    )
    args = parser.parse_args()
    results = {}
    for title, group in plan(args.quick).items():
        results[title] = measure(group["configs"], group["repeats"])
        print(f"done: {title}", flush=True)
    text = report(results, args.quick, time_suite() if args.suite else None)
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    if out:
        out.write_text(text)
        (out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

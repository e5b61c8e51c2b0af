"""The benchmark's report: tables per group, ratios measured in one run, targets met or not."""

from __future__ import annotations

import time

import torch

from harness import paired_ratio


def _dtype(row: dict) -> str:
    return "bfloat16" if row["method"].endswith("-bf16") else "float32"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def report(
    results: dict[str, list[dict]], quick: bool, suite: dict | None, engines: dict | None
) -> str:
    """The Markdown report of one benchmark run."""
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
                + (f" {r['gflops']:.3g} |" if rate else "")
            )
        by = {r["method"]: r for r in rows}
        lines.append("")
        pair = next((m.removeprefix("lora") for m in by if m.startswith("lora")), None)
        if pair is not None:
            cur, lora = by["curlora" + pair], by["lora" + pair]
            floor = by.get("head-only" + pair) or by.get("frozen")
            t_ratio = paired_ratio(cur, lora)
            m_ratio = cur["peak_mb"] / max(lora["peak_mb"], 1e-9)
            per_round = ", ".join(
                f"{a / b:.3f}" for a, b in zip(cur["times"], lora["times"], strict=True)
            )
            lines.append(
                f"- CURLoRA / LoRA: time {t_ratio:.3f} (per round: {per_round}), peak memory {m_ratio:.3f}"
            )
            if floor is not None:
                lines.append(
                    f"- CURLoRA / floor ({floor['method']}): time {paired_ratio(cur, floor):.3f}"
                )
            peers = [m for m in by if m.removesuffix(pair) not in ("curlora", "lora")]
            if floor is None and peers:
                # The peers group: every other method's cost against both references, same rounds.
                lines.append(
                    "- each method / CURLoRA and / LoRA (time, peak memory): "
                    + "; ".join(
                        f"{m} {paired_ratio(by[m], cur):.2f}, {paired_ratio(by[m], lora):.2f} "
                        f"(memory {by[m]['peak_mb'] / cur['peak_mb']:.2f}, "
                        f"{by[m]['peak_mb'] / lora['peak_mb']:.2f})"
                        for m in peers
                    )
                )
            if "curlora-dense" in by:
                lines.append(
                    "- dense C·U·R forward (reference approach) / factored: time "
                    f"{paired_ratio(by['curlora-dense'], cur):.2f}"
                )
            if cur["gflops"] and peak:
                lines.append(
                    "- share of the matrix-product ceiling: "
                    + ", ".join(f"{r['method']} {r['gflops'] / peak[_dtype(r)]:.0%}" for r in rows)
                )
            lines.append("")
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
                f"- the evidence preset's evaluation (batched, bf16 autocast) over the reference's "
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
    if engines:
        lines += engine_section(engines, targets)
    lines += ["## Notebook suite (cpu profile)", ""]
    if suite:
        rate = suite.get("matmul_gflops", {})
        lines += [
            f"- first run on empty caches: {suite['first_s']:.0f} s; cached re-run: "
            f"{suite['cached_s']:.1f} s (this machine: bf16 {rate.get('bfloat16', float('nan')):.0f}, "
            f"fp32 {rate.get('float32', float('nan')):.0f} GFLOP/s on a 2048² product)",
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


def engine_section(engines: dict, targets: list) -> list[str]:
    """Experiments per hour: the engine before this work, the new one serial, on workers, and
    at the precision the cpu preset picks here."""
    lines = [
        "## Experiments per hour (cpu preset, all four methods)",
        "",
        engines["what"],
        "",
        "| engine | wall time (s) | experiments per hour |",
        "|---|---|---|",
    ]
    for name, row in engines["rows"].items():
        lines.append(f"| {name} | {row['seconds']:.0f} | {row['per_hour']:.1f} |")
    lines.append("")
    if "old" in engines["rows"]:
        old = engines["rows"]["old"]["per_hour"]
        for name, row in engines["rows"].items():
            if name != "old":
                lines.append(f"- {name} / old: ×{row['per_hour'] / old:.2f}")
        # Two targets: the cpu preset's experiments per hour as its user gets them here (the
        # engine and the precision it picks), and the engine alone at the old precision.
        rows = engines["rows"]
        here = rows[engines.get("preset_row", "new, worker processes")]["per_hour"]
        engine = max(rows[n]["per_hour"] for n in ("new, one process", "new, worker processes"))
        targets += [
            (
                "experiments per hour on the cpu preset, as it runs here, ≥ 2× the old engine",
                here >= 2 * old,
                f"×{here / old:.2f}",
            ),
            (
                "experiments per hour, the engine alone (old precision), ≥ 2× the old engine",
                engine >= 2 * old,
                f"×{engine / old:.2f}",
            ),
        ]
    lines.append("")
    return lines

"""What the benchmark measures: groups of configurations timed side by side."""

from __future__ import annotations

import torch

#: How the matrix-product group's title begins: this machine's arithmetic ceiling.
CEILING = "matrix product"


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

    # The peers side by side with CURLoRA and LoRA (fp32, the engine's own path). Left out of the
    # quick plan, which checks the harness, not the methods (tests/test_peers.py runs each one).
    peers = (
        {}
        if quick
        else {
            f"train step, {model} q/k/v r{rank}, batch 8×{tokens}: the peers": group(
                repeats,
                ("curlora", "lora", "dora", "pissa", "milora", "middle", "corda", "osf", "full"),
                kind="model",
                model=model,
                rank=rank,
                batch=8,
                tokens=tokens,
            )
        }
    )
    return peers | {
        f"train step, {model} q/k/v r{rank}, batch 8×{tokens}, bf16 autocast as the evidence preset": group(
            repeats,
            ("curlora-bf16", "lora-bf16", "head-only-bf16"),
            kind="model",
            model=model,
            rank=rank,
            batch=8,
            tokens=tokens,
        ),
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
        f"{CEILING} {size}×{size} (this machine's arithmetic ceiling)": group(
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

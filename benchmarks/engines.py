"""Experiments per hour, old engine against new, measured side by side in one run.

"Old" is the engine this project had before its second wave (``curlora.continual`` at commit
``BASELINE``), checked out into a temporary git worktree and run as it was; "new" is this
checkout's engine on the same experiment (same model, tasks, sizes, precision), first in one
process using every core, then on one worker process per core. Each is timed as a whole
process on empty results, so loading, training, evaluation and perplexity all count.

The sweep is two seeds of the four methods (8 runs), the smallest with a whole number of runs per
worker on 2 cores: with four runs of unequal length, one worker would finish early and the
measurement would be of the tail rather than of experiments per hour.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The last commit of the first-wave engine (curlora/continual.py).
BASELINE = "7f2d97a"
METHODS = ("curlora", "lora", "head-only", "svd")
SEEDS = ("0", "1")

NEW = textwrap.dedent("""
    import sys
    from curlora.experiment import preset, run_many
    quick, executor = sys.argv[1] == "quick", sys.argv[2]
    # The old cpu preset's experiment: 3 tasks, 200 train / 100 eval examples, 1,024 perplexity
    # tokens in two windows of 512 after every task; no validation split (the old engine had
    # none); bf16 autocast as the old preset, whatever precision the cpu preset picks here, so
    # the ratio is the engine's alone.
    old_cpu = dict(val_size=0, eval_size=100, ppl_windows=2, ppl_stages="each", autocast="bfloat16")
    base = preset("smoke") if quick else preset("cpu", **old_cpu)
    if quick:
        base = base.replace(val_size=0)
    seeds = [0] if quick else [0, 1]
    methods = ("curlora", "lora", "head-only", "svd")
    specs = [base.replace(method=m, seed=s) for s in seeds for m in methods]
    if __name__ == "__main__":
        run_many(specs, executor=executor, progress=False)
""")


def _timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def time_engines(quick: bool) -> dict:
    """Wall time and experiments per hour of the old engine and the new one (serial, workers)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="curlora-engines-") as tmp:
        tmp = Path(tmp)
        worktree = tmp / "baseline"
        have = subprocess.run(
            ["git", "cat-file", "-e", f"{BASELINE}^{{commit}}"], cwd=ROOT, capture_output=True
        )
        if have.returncode == 0:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(worktree), BASELINE],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            try:
                old = [
                    sys.executable,
                    "-m",
                    "curlora.continual",
                    "--preset",
                    "smoke" if quick else "cpu",
                    "--methods",
                    *METHODS,
                    "--seeds",
                    *(SEEDS[:1] if quick else SEEDS),
                ]
                seconds = _timed(
                    old,
                    worktree,
                    {**env, "PYTHONPATH": str(worktree), "CURLORA_RESULTS": str(tmp / "old")},
                )
                rows["old"] = {"seconds": seconds}
            finally:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(worktree)],
                    cwd=ROOT,
                    capture_output=True,
                )
        script = tmp / "new.py"
        script.write_text(NEW)
        for name, executor in (
            ("new, one process", "serial"),
            ("new, worker processes", "processes"),
        ):
            results = tmp / name.replace(" ", "-").replace(",", "")
            cmd = [sys.executable, str(script), "quick" if quick else "full", executor]
            rows[name] = {"seconds": _timed(cmd, ROOT, {**env, "CURLORA_RESULTS": str(results)})}
    runs = len(METHODS) * (1 if quick else len(SEEDS))
    for row in rows.values():
        row["per_hour"] = runs / row["seconds"] * 3600
    what = (
        f"The same {runs} runs ({', '.join(METHODS)}; seed"
        + (" 0" if quick else f"s {', '.join(SEEDS)}")
        + (
            "; smoke sizes"
            if quick
            else "; SmolLM2-135M, 3 tasks × 200 training / 100 evaluation examples, bf16 autocast"
        )
        + f") on empty results. Old: `curlora.continual` at {BASELINE} in a git worktree"
        + ("" if "old" in rows else " — not measured: that commit is not in this clone's history")
        + "."
    )
    return {"what": what, "rows": rows}

"""Experiments per hour, old engine against new, measured side by side in one run.

"Old" is the engine this project had before its second wave (``curlora.continual`` at commit
``BASELINE``), checked out into a temporary git worktree and run as it was; "new" is this
checkout's engine on the same experiment (same model, tasks, sizes), first in one process using
every core, then on one worker process per core, both under bf16 autocast as the old cpu preset
ran on every machine (so their ratio to "old" is the engine's alone); last on workers at the
precision the cpu preset now picks on this machine (what a user of the cpu preset gets here:
float32 where bf16 products are not clearly faster). Each is timed as a whole process on empty
results, so loading, training, evaluation and perplexity all count.

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
#: The row timing the cpu preset as it runs on this machine (its precision chosen by measurement).
PRESET_ROW = "new, worker processes, the cpu preset's precision here ({precision})"

NEW = textwrap.dedent("""
    import sys
    from curlora.experiment import preset, run_many
    quick, executor, precision = sys.argv[1] == "quick", sys.argv[2], sys.argv[3]
    # The old cpu preset's experiment: 3 tasks, 200 train / 100 eval examples, 1,024 perplexity
    # tokens in two windows of 512 after every task; no validation split (the old engine had
    # none). The precision is given, so the cpu preset does not measure it in this timed process.
    autocast = None if precision == "float32" else precision
    old_cpu = dict(val_size=0, eval_size=100, ppl_windows=2, ppl_stages="each")
    if quick:
        base = preset("smoke", autocast=autocast, val_size=0)
    else:
        base = preset("cpu", autocast=autocast, **old_cpu)
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
    """Wall time and experiments per hour: the old engine, the new one at the old precision
    (one process, workers), and the new one at the precision the cpu preset picks here."""
    from curlora.experiment.machine import machine_autocast

    # Decided here, from this machine's kept measurement, so that no timed process measures it.
    precision = machine_autocast() or "float32"
    # The old engine's precision: bf16 autocast in its cpu preset, fp32 in its smoke preset.
    old_precision = "float32" if quick else "bfloat16"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="curlora-engines-") as tmp:
        tmp = Path(tmp)
        worktree = tmp / "baseline"
        have = subprocess.run(
            ["git", "cat-file", "-e", f"{BASELINE}^{{commit}}"], cwd=ROOT, capture_output=True
        )
        if have.returncode == 0:
            # Forget worktrees of earlier runs that were killed before removing theirs.
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
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
        configurations = [
            ("new, one process", "serial", old_precision),
            ("new, worker processes", "processes", old_precision),
        ]
        # Where the cpu preset picks the old precision, the workers' row already times it.
        here = "new, worker processes"
        if precision != old_precision:
            here = PRESET_ROW.format(precision=precision)
            configurations.append((here, "processes", precision))
        for name, executor, autocast in configurations:
            results = tmp / f"new-{len(rows)}"
            cmd = [sys.executable, str(script), "quick" if quick else "full", executor, autocast]
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
            else "; SmolLM2-135M, 3 tasks × 200 training / 100 evaluation examples"
        )
        + f") on empty results. Old: `curlora.continual` at {BASELINE} in a git worktree"
        + ("" if "old" in rows else " — not measured: that commit is not in this clone's history")
        + f". Old and the first two new rows run in {old_precision}, as the old "
        + ("smoke" if quick else "cpu")
        + " preset did on every machine, so their ratio is the engine's alone; "
        + (
            f"the last runs at the precision the cpu preset picks on this machine ({precision}), "
            "as a user of it gets."
            if precision != old_precision
            else f"the cpu preset picks {precision} here too, so the workers' row is what its "
            "user gets."
        )
    )
    return {"what": what, "rows": rows, "preset_row": here}

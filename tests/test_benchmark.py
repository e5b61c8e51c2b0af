"""The benchmark's quick mode runs end to end, so the script cannot rot (no timing assertions)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_quick_benchmark_writes_a_report(tmp_path):
    out = tmp_path / "quick.md"
    subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    text = out.read_text()
    for needle in (
        "CURLoRA / LoRA: time",
        "merged / base inference time",
        "examples/s",
        "share of the matrix-product ceiling",
        "batching alone (same precision)",
        "bf16 autocast as the evidence preset",
        "## Experiments per hour",
        "new, worker processes",
        "## Targets",
    ):
        assert needle in text
    # The old engine is timed from its commit; a shallow clone lacks it and the report says so.
    spec = importlib.util.spec_from_file_location("engines", BENCH.parent / "engines.py")
    engines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(engines)
    commit = f"{engines.BASELINE}^{{commit}}"
    has_baseline = (
        subprocess.run(["git", "cat-file", "-e", commit], cwd=BENCH.parent).returncode == 0
    )
    if has_baseline:
        assert "experiments per hour on the cpu preset, as it runs here" in text
        assert "experiments per hour, the engine alone" in text
    else:
        assert "not in this clone's history" in text
    assert out.with_suffix(".json").is_file()

"""CURLoRA vs PEFT LoRA cost, and the experiment engine's throughput, measured side by side in one
run; writes benchmarks/RESULTS.md.

    python benchmarks/bench.py            # full run on SmolLM2-135M (about an hour on 2 cores)
    python benchmarks/bench.py --suite    # also the cpu notebook suite on a fresh clone
    python benchmarks/bench.py --quick    # tiny shapes, minutes (CI runs this so it cannot rot)

plan.py says what is measured, harness.py how (one process per configuration, interleaved
repeats, live-tensor peak memory), engines.py the old-vs-new engine runs, suite.py the notebook
suite, report.py what is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engines import time_engines
from harness import measure
from plan import plan
from report import report
from suite import time_suite

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (CI)")
    parser.add_argument(
        "--suite", action="store_true", help="also time the cpu notebook suite (long)"
    )
    parser.add_argument("--no-engines", action="store_true", help="skip the old-vs-new engine runs")
    parser.add_argument(
        "--out", type=Path, help="report path (default RESULTS.md; stdout with --quick)"
    )
    args = parser.parse_args()
    results = {}
    for title, group in plan(args.quick).items():
        results[title] = measure(group["configs"], group["repeats"])
        print(f"done: {title}", flush=True)
    engines = None if args.no_engines else time_engines(args.quick)
    print("done: engines", flush=True)
    suite = time_suite() if args.suite else None
    text = report(results, args.quick, suite, engines)
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    if out:
        out.write_text(text)
        payload = {"groups": results, "engines": engines, "suite": suite}
        out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

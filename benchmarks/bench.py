"""CURLoRA vs PEFT LoRA cost, and the experiment engine's throughput, measured side by side in one
run; writes benchmarks/RESULTS.md.

    python benchmarks/bench.py            # full run on SmolLM2-135M (about an hour on 2 cores)
    python benchmarks/bench.py --suite    # also the cpu notebook suite on a fresh clone
    python benchmarks/bench.py --quick    # tiny shapes, minutes (CI runs this so it cannot rot)
    python benchmarks/bench.py --only peers --out benchmarks/PEERS.md   # every method side by side

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
from plan import CEILING, plan
from report import report
from suite import time_suite

HERE = Path(__file__).resolve().parent
#: The ceiling's configuration for a group's precision (True: bf16 autocast).
PRECISION = {False: "float32", True: "bfloat16"}


def only(groups: dict[str, dict], text: str, parser: argparse.ArgumentParser) -> dict:
    """The groups whose title contains ``text``, and the matrix-product ceiling in the
    precisions they use (bf16 products alone take minutes where bf16 is emulated)."""
    chosen = {t: g for t, g in groups.items() if text in t and not t.startswith(CEILING)}
    if not chosen:
        parser.error(f"No group title contains {text!r}; the groups: {list(groups)}.")
    used = {PRECISION[c["method"].endswith("-bf16")] for g in chosen.values() for c in g["configs"]}
    for title, group in groups.items():
        if title.startswith(CEILING):
            configs = [c for c in group["configs"] if c["method"] in used]
            chosen[title] = {**group, "configs": configs}
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (CI)")
    parser.add_argument(
        "--suite", action="store_true", help="also time the cpu notebook suite (long)"
    )
    parser.add_argument("--no-engines", action="store_true", help="skip the old-vs-new engine runs")
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="run only the groups whose title contains TEXT (e.g. 'peers'), beside the "
        "matrix-product ceiling every time is read against; no engine or suite runs",
    )
    parser.add_argument(
        "--out", type=Path, help="report path (default RESULTS.md; stdout with --quick)"
    )
    args = parser.parse_args()
    groups = plan(args.quick)
    if args.only:
        groups = only(groups, args.only, parser)
    results = {}
    for title, group in groups.items():
        results[title] = measure(group["configs"], group["repeats"])
        print(f"done: {title}", flush=True)
    engines = None if args.no_engines or args.only else time_engines(args.quick)
    print("done: engines", flush=True)
    suite = time_suite() if args.suite and not args.only else None
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

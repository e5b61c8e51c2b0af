"""Command line: run one experiment, or a sweep, and print what it measured.

    python -m curlora.experiment --preset cpu --method curlora --rank 16 --seed 0
    python -m curlora.experiment --preset cpu --methods curlora lora head-only --seeds 0 1 2 \\
        --tasks reviews.csv "tweets.jsonl?text=tweet&label=mood" --executor processes
    python -m curlora.experiment --domain python-stdlib --methods curlora lora full --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from curlora.cur import SAMPLING_RULES
from curlora.experiment.cost import check_precision
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.presets import PRESETS, preset
from curlora.experiment.results import Results
from curlora.experiment.runner import run
from curlora.experiment.summary import summarise
from curlora.experiment.sweep import EXECUTORS, executor_name, run_many
from curlora.methods import REGISTRY


def format_results(results: Results) -> str:
    """The accuracy matrix, metrics and perplexities of one run as text."""
    s = results.summary()
    R = results.accuracy_matrix()
    majority = results.majority()
    lines = [
        f"run {results.spec.label()}  (adapter params {s['adapter_params']:,}, head params {s['head_params']:,})",
        "",
        "accuracy matrix R[after task i, task j] (eval split):",
        R.round(3).to_string(),
        "",
        "majority-class level: " + ", ".join(f"{t} {majority[t]:.3f}" for t in R.columns),
        "",
        f"ACC {s['ACC']:.3f}   BWT {s['BWT']:+.3f}   Forgetting {s['Forgetting']:+.3f}",
        "",
        f"perplexity ({results.spec.corpus}, {results.spec.ppl_mode}):",
    ]
    for _, row in results.perplexity.iterrows():
        after = row["after_task"]
        where = (
            "initial"
            if after is None or (isinstance(after, float) and np.isnan(after))
            else f"after {after}"
        )
        lines.append(f"  {where:<28} {row['perplexity']:9.3f}   ×{row['ratio']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one experiment (or several methods × seeds) and print the results."""
    parser = argparse.ArgumentParser(prog="python -m curlora.experiment", description=main.__doc__)
    parser.add_argument("--preset", default="cpu", choices=list(PRESETS))
    parser.add_argument(
        "--model", help="built-in name, hub id, save_pretrained folder or .gguf file"
    )
    parser.add_argument("--method", choices=tuple(REGISTRY))
    parser.add_argument("--rank", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--sampling", choices=tuple(SAMPLING_RULES))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tasks", nargs="+", help="task references: names, files, hub:<dataset>")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=tuple(REGISTRY),
        help="several methods: print a summary table",
    )
    parser.add_argument("--seeds", nargs="+", type=int, help="several seeds: mean and 95%% CI")
    parser.add_argument(
        "--executor",
        default="auto",
        type=executor_name,
        help=f"{', '.join(EXECUTORS)} or a dask scheduler address (tcp://host:8786)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="ignore and do not write cached results"
    )
    parser.add_argument(
        "--domain",
        help="continued training on a domain (protocol 2: python-stdlib or a folder of text "
        "files) instead of the task sequence; --preset, --tasks and --sampling other than "
        "eq. 4's are the task protocol's",
    )
    args = parser.parse_args(argv)
    if args.domain is not None:
        return _domain(args)
    fixed = {"preset", "no_cache", "methods", "seeds", "executor"}
    try:
        spec = preset(
            args.preset, **{k: v for k, v in vars(args).items() if k not in fixed and v is not None}
        )
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if args.methods or args.seeds:
            return _sweep(spec, args)
        check_precision([spec])
        results = run(spec, cache=not args.no_cache)
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if results is not None:
        print(format_results(results))
    return 0


def _sweep(spec, args) -> int:
    specs = [
        spec.replace(method=m, seed=s)
        for m in (args.methods or [spec.method])
        for s in (args.seeds or [spec.seed])
    ]
    results = run_many(specs, executor=args.executor, cache=not args.no_cache)
    for r in results:
        print(format_results(r), end="\n\n")
    table = summarise(results, base_rank=spec.rank)
    cols = ["arm", "n_seeds"] + [
        c for c in table.columns if c.split("_")[0] in ("ACC", "BWT", "Forgetting", "ppl")
    ]
    print(table[cols].round(4).to_string(index=False))
    return 0


def _domain(args) -> int:
    """Continued-training runs (methods × seeds) and a table of what each learned and forgot."""
    if args.tasks:
        print("error: --tasks belongs to the task protocol; drop it or --domain.", file=sys.stderr)
        return 2
    fields = {k: getattr(args, k) for k in ("model", "rank", "lr", "sampling")}
    try:
        base = DomainSpec(domain=args.domain, **{k: v for k, v in fields.items() if v})
        specs = [
            base.replace(method=m, seed=s)
            for m in (args.methods or [args.method or base.method])
            for s in (args.seeds or [args.seed or 0])
        ]
        check_precision(specs)
        results = run_many(specs, executor=args.executor, cache=not args.no_cache)
    except (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = pd.DataFrame([{"run": r.spec.label(), **r.summary()} for r in results])
    print(f"continued training on {args.domain} (nats per token; learning on held-out files):")
    print(table.round(4).to_string(index=False))
    return 0

"""The confirmatory study's runs, in the batches they are computed and committed in.

The design is the registered plan's (``curlora/resources/analysis_plan.toml``, ``[design]``):
each batch is a ``study_design`` over the plan's preset, arms, rates and seeds, so the findings
read exactly the runs computed here. Batches run in the order that first gives a usable
reading (the paper's order at five seeds), then sharpens it.

    python -m curlora.experiment.confirmatory                 # every batch: runs, done, cost here
    python -m curlora.experiment.confirmatory paper-0-4       # compute one batch (cached runs load)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from curlora.domain_study import domain_design
from curlora.experiment.cost import duration, estimate_seconds
from curlora.experiment.design import study_design
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.machine import describe_machine, machine_measurement
from curlora.experiment.profiles import registered_study
from curlora.experiment.spec import ExperimentSpec
from curlora.experiment.sweep import cached
from curlora.plan import AnalysisPlan, load_plan

#: Where the committed evidence lives (the confirmatory runs are keyed apart by their preset).
EVIDENCE = Path(__file__).resolve().parents[2] / "results" / "evidence"


def batches(
    plan: AnalysisPlan | None = None, domain_plan: AnalysisPlan | None = None
) -> dict[str, list[ExperimentSpec | DomainSpec]]:
    """The plans' runs as batches, in the order they are computed: the paper protocol's, then
    protocol 2's (continued training) once its plan is registered."""
    plan = load_plan() if plan is None else plan
    domain_plan = load_plan(protocol="domain") if domain_plan is None else domain_plan
    d = plan.design
    main = list(d["main_arms"])
    ablation = list(d["ablation_arms"])

    def design(arms: list[str], seeds: list[int], orders: str) -> list[ExperimentSpec]:
        return study_design(**registered_study(arms, seeds, orders, plan)).specs()

    paper = d["paper_order_seeds"]
    half = len(paper) // 2
    found = {
        f"paper-{paper[0]}-{paper[half - 1]}": design(main, paper[:half], "paper"),
        f"paper-{paper[half]}-{paper[-1]}": design(main, paper[half:], "paper"),
        "reverse": design(main, d["reverse_order_seeds"], "reverse"),
        "ablation": design(ablation, d["ablation_seeds"], "paper"),
    }
    # The secondary peers (once an amendment registers their rates) beside the main arms at the
    # peers' seeds, in each of their orders: the main arms' runs are shared with the batches above.
    peers = plan.secondary_arms()
    if peers:
        for order in d["secondary"]["orders"]:
            name = "peers" if order == d["headline_order"] else f"peers-{order}"
            found[name] = design([*main, *peers], d["secondary"]["seeds"], order)
    if domain_plan.status == "registered":
        found["domain"] = domain_design(domain_plan)
    return found


def missing(specs: list) -> list:
    """The specs not yet in the results cache."""
    return [s for s in specs if cached(s) is None]


def main(argv: list[str] | None = None) -> int:
    """List the batches with their cost here, or compute one."""
    parser = argparse.ArgumentParser(prog="python -m curlora.experiment.confirmatory")
    parser.add_argument("batch", nargs="?", help="the batch to compute (none: list them)")
    args = parser.parse_args(argv)
    os.environ.setdefault("CURLORA_RESULTS", str(EVIDENCE))
    print(describe_machine())
    rates = machine_measurement()["matmul_gflops"]
    found = batches()
    for name, specs in found.items():
        todo = missing(specs)
        cost = estimate_seconds(todo, rates)
        print(
            f"{name:<12} {len(specs):>4} runs, {len(todo):>4} to compute"
            + (f", about {duration(cost)} here" if todo and cost else "")
        )
    if args.batch is None:
        return 0
    if args.batch not in found:
        parser.error(f"unknown batch {args.batch!r}; choose one of {', '.join(found)}")
    from curlora.experiment.sweep import run_many

    run_many(found[args.batch], desc=args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

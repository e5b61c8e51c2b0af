"""The protocol 2 pilot: where continued training on the Python standard library starts to
learn, and where it breaks, for CURLoRA, LoRA r16 and full fine-tuning.

One seed, two rates per arm a decade apart, the protocol's default budget (32 steps of 8 blocks
of 128 tokens). It reads learning (target-domain validation NLL drop) and forgetting (held-in
Wikipedia NLL rise), both in nats per token, on validation only, so that the registered rates
(``curlora/resources/analysis_plan_domain.toml``) are placed without looking at the reported
split.

    CURLORA_RESULTS=results/pilot python benchmarks/domain_pilot.py           # the three arms
    CURLORA_RESULTS=results/pilot python benchmarks/domain_pilot.py --peers   # and the PEFT peers

The peers run on the same seed (0, which the plan's seeds 1-5 leave out), beside the three arms'
runs, so one table reads them all.
"""

from __future__ import annotations

import argparse

import pandas as pd

from curlora.experiment.confirmatory import missing
from curlora.experiment.cost import duration, estimate_seconds
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.machine import describe_machine, machine_measurement
from curlora.experiment.sweep import run_many

#: A decade apart per arm, around where eight steps moved each (CURLoRA 3e-3: 0.037 nats learned;
#: LoRA 1e-3: 0.064; benchmarks/NOTES.md, "Protocol 2 pilot").
RATES = {"curlora": [3e-3, 3e-2], "lora": [3e-4, 3e-3], "full": [3e-5, 3e-4]}
#: The PEFT peers, a decade apart each: LoRA-shaped ones on LoRA's decade; PiSSA (factors from
#: the largest singular values) and OSF (trains weight entries directly) on full fine-tuning's.
PEER_RATES = {
    "dora": [3e-4, 3e-3],
    "milora": [3e-4, 3e-3],
    "middle": [3e-4, 3e-3],
    "corda": [3e-4, 3e-3],
    "pissa": [3e-5, 3e-4],
    "osf": [3e-5, 3e-4],
}


def specs(peers: bool = False) -> list[DomainSpec]:
    """Every pilot run: the three arms', and the peers' too when asked."""
    grid = {**RATES, **PEER_RATES} if peers else RATES
    return [DomainSpec(method=m, lr=lr, seed=0) for m, rates in grid.items() for lr in rates]


def reading(runs: list[DomainResults]) -> pd.DataFrame:
    """Per run: learning and forgetting on validation (nats per token), and its cost."""
    return pd.DataFrame(
        [
            {
                "method": r.spec.method,
                "lr": r.spec.lr,
                "trainable": r.parameters["adapter"],
                "learned (val, nats)": r.learning("val"),
                "forgot (held-in wiki, nats)": r.forgetting("val"),
                "target ppl": r.summary()["target_ppl_after"],
                "final loss": r.loss[-1],
                "seconds": round(sum(r.timings.values())),
            }
            for r in runs
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Run the pilot (cached runs load at once) and print its reading."""
    parser = argparse.ArgumentParser(prog="python benchmarks/domain_pilot.py")
    parser.add_argument("--peers", action="store_true", help="add the PEFT peers")
    args = parser.parse_args(argv)
    print(describe_machine())
    todo = specs(args.peers)
    todo_here = missing(todo)
    seconds = estimate_seconds(todo_here, machine_measurement()["matmul_gflops"])
    print(f"{len(todo)} runs ({len(todo_here)} to compute, about {duration(seconds)} here)")
    table = reading(run_many(todo, desc="protocol 2 pilot"))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()

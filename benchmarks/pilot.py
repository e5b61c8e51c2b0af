"""The regime pilot: which training budget makes the adapters learn well beyond a new head alone.

Each setting trains the paper's task order (seed 0) with head-only, LoRA r16 and CURLoRA at two
rates each, and reads validation only: own-task accuracy and NLL gains over head-only (mean over
tasks) and the perplexity ratio. The target is a gain of at least 5 points for both adapters at
their best rate, for at most 2–3× the cost of one of today's evidence runs.

    CURLORA_RESULTS=results/pilot python benchmarks/pilot.py

The evaluation split is cut to 100 examples (the pilot never reads it); each run's
``results.json.gz`` records its timings and the machine's matrix-product rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from curlora.experiment.cost import estimate_seconds
from curlora.experiment.machine import describe_machine, machine_measurement
from curlora.experiment.presets import preset
from curlora.experiment.results import Results
from curlora.experiment.sweep import run_many

#: Training budgets tried: (name, training examples per task, epochs). Today's evidence is
#: 200 × 1 (25 Adam steps per task).
SETTINGS = [("3 epochs", 200, 3), ("3x data", 600, 1)]
#: Rates per arm: three times the steps move an adapter about three times as far at one rate,
#: so the grids sit a step below the evidence's operating rates (LoRA 3e-3, CURLoRA 3e-3).
RATES = {"lora": [3e-4, 1e-3], "curlora": [1e-3, 3e-3], "head-only": [1e-3]}


def specs() -> list:
    """Every pilot run, head-only first (it is the baseline and costs seconds)."""
    base = preset("evidence", autocast=None, eval_size=100, seed=0)
    return [
        base.replace(method=method, lr=lr, train_size=size, epochs=epochs)
        for _, size, epochs in SETTINGS
        for method in ("head-only", "lora", "curlora")
        for lr in RATES[method]
    ]


def reading(runs: list[Results]) -> pd.DataFrame:
    """Per run: validation gains over the same setting's head-only run, perplexity and cost."""
    rows = []
    heads = {(r.spec.train_size, r.spec.epochs): r for r in runs if r.spec.method == "head-only"}
    for r in runs:
        base = heads[(r.spec.train_size, r.spec.epochs)]
        own = [(t, t) for t in r.task_names]
        acc = [
            r.accuracy_matrix("val").loc[i, j] - base.accuracy_matrix("val").loc[i, j]
            for i, j in own
        ]
        nll = [
            base.example_scores(t, t, "val").mean() - r.example_scores(t, t, "val").mean()
            for t, _ in own
        ]
        rows.append(
            {
                "setting": f"{r.spec.train_size} × {r.spec.epochs}",
                "method": r.spec.method,
                "lr": r.spec.lr,
                "val acc": np.mean([r.accuracy_matrix("val").loc[t, t] for t, _ in own]),
                "gain (points)": 100 * np.mean(acc),
                "gain per task": " / ".join(f"{100 * a:+.0f}" for a in acc),
                "NLL drop (nats)": np.mean(nll),
                "final val ACC": r.accuracy_matrix("val").iloc[-1].mean(),
                "ppl ratio": r.summary()["ppl_ratio"],
                "seconds": sum(r.timings.values()),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    """Run the pilot (cached runs load at once) and print its reading."""
    print(describe_machine())
    todo = specs()
    rates = machine_measurement()["matmul_gflops"]
    print(f"{len(todo)} runs, about {estimate_seconds(todo, rates) / 60:.0f} min here")
    table = reading(run_many(todo))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()

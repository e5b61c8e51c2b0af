"""Tables over many runs: one row per configuration, seeds pooled and nothing else.

Runs are grouped by the spec's key without its seed, so two runs are pooled only when every
other setting and every referenced file is the same.
"""

from __future__ import annotations

import pandas as pd

from curlora.arms import Arm
from curlora.experiment.results import Results
from curlora.stats import t_interval

#: Summary columns that identify a configuration rather than measure it.
LABELS = ("method", "rank", "lr", "sampling", "seed", "order")


def runs_table(results: list[Results]) -> pd.DataFrame:
    """One row per run: its summary numbers plus arm, group key and seed."""
    return pd.DataFrame(
        [
            {**r.summary(), "arm": Arm.of_spec(r.spec).name, "group": r.spec.group_key()}
            for r in results
        ]
    )


def summarise(results: list[Results], confidence: float = 0.95) -> pd.DataFrame:
    """One row per configuration (runs differing only by seed): mean and CI half-width of each number."""
    rows = runs_table(results)
    numeric = [
        c
        for c in rows.columns
        if c not in (*LABELS, "arm", "group") and pd.api.types.is_numeric_dtype(rows[c])
    ]
    out = []
    for _, group in rows.groupby("group", sort=False):
        first = group.iloc[0]
        row = {
            "arm": first["arm"],
            **{k: first[k] for k in LABELS if k != "seed"},
            "n_seeds": len(group),
        }
        for c in numeric:
            interval = t_interval(group[c].tolist(), confidence)
            row[f"{c}_mean"], row[f"{c}_ci"] = interval.mean, interval.half
        out.append(row)
    return pd.DataFrame(out)

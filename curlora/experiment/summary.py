"""Tables over many runs: one row per configuration, seeds pooled and nothing else.

Runs are grouped by the spec's key without its seed, so two runs are pooled only when every
other setting and every referenced file is the same.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from curlora.arms import Arm
from curlora.experiment.results import Results
from curlora.stats import t_interval

#: Summary columns that identify a configuration rather than measure it.
LABELS = ("method", "rank", "lr", "sampling", "seed", "order")
#: Ratios, pooled on the log scale: one seed at ×10⁶ would otherwise set an arithmetic mean.
RATIOS = ("ppl_ratio",)


def runs_table(results: list[Results], base_rank: int | None = None) -> pd.DataFrame:
    """One row per run: its summary numbers plus arm (its rank named where it differs from
    ``base_rank``), group key and seed."""
    return pd.DataFrame(
        [
            {
                **r.summary(),
                "arm": Arm.of_spec(r.spec, base_rank).name,
                "group": r.spec.group_key(),
            }
            for r in results
        ]
    )


def summarise(
    results: list[Results], confidence: float = 0.95, base_rank: int | None = None
) -> pd.DataFrame:
    """One row per configuration (runs differing only by seed): each number's mean and its
    t-interval's half-width over seeds (``_ci``); for a ratio, the geometric mean (``_gmean``)
    and the factor the interval spans either side of it (``_factor``)."""
    rows = runs_table(results, base_rank)
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
            if c in RATIOS:
                interval = t_interval(np.log(group[c].to_numpy()).tolist(), confidence)
                row[f"{c}_gmean"] = math.exp(interval.mean)
                row[f"{c}_factor"] = math.exp(interval.half)
            else:
                interval = t_interval(group[c].tolist(), confidence)
                row[f"{c}_mean"], row[f"{c}_ci"] = interval.mean, interval.half
        out.append(row)
    return pd.DataFrame(out)

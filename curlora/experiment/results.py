"""What one run recorded, as tidy DataFrames, and the numbers a summary reads off them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curlora import metrics
from curlora.experiment.spec import ExperimentSpec
from curlora.perplexity import from_nll

FRAMES = ("accuracy", "perplexity", "layers", "loss")


@dataclass
class Results:
    """Everything one run recorded.

    ``accuracy``: stage, after_task, task, split ('eval' reported, 'val' for choosing settings),
    accuracy, majority, n, correct (per-example 0/1 as a string, for bootstraps); since 0.3 also
    nll and brier (means) and example_nll, example_brier (per example).
    ``perplexity``: stage, after_task, perplexity, ratio, nll (per-window [NLL, tokens]).
    ``layers``: per adapted layer and stage, ‖W‖, ‖ΔW‖, their ratio, spectra, output shift.
    ``loss``: per training step. ``timings``: seconds per phase. ``environment``: versions.
    """

    spec: ExperimentSpec
    accuracy: pd.DataFrame
    perplexity: pd.DataFrame
    layers: pd.DataFrame
    loss: pd.DataFrame
    parameters: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    # Derived tables are read many times by a study; computed once per run.
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def accuracy_matrix(self, split: str = "eval") -> pd.DataFrame:
        """R[i][j]: rows = after training task i, columns = task j (NaN above the diagonal)."""
        key = ("matrix", split)
        if key not in self._memo:
            tasks = list(self.task_names)
            acc = self.accuracy[self.accuracy["split"] == split]
            R = acc.pivot(index="after_task", columns="task", values="accuracy")
            self._memo[key] = R.reindex(index=tasks, columns=tasks)
        return self._memo[key].copy()

    @property
    def task_names(self) -> list[str]:
        """The tasks' names in training order (as they appear in the records)."""
        if "task_names" not in self._memo:
            eval_rows = self.accuracy["split"] == "eval"
            self._memo["task_names"] = list(
                dict.fromkeys(self.accuracy.loc[eval_rows, "after_task"])
            )
        return list(self._memo["task_names"])

    def majority(self, split: str = "eval") -> pd.Series:
        """The majority-class accuracy of each task's split (its chance level)."""
        acc = self.accuracy[self.accuracy["split"] == split]
        return acc.drop_duplicates("task").set_index("task")["majority"]

    def correctness(self, task: str, after_task: str, split: str = "eval") -> np.ndarray:
        """Per-example correctness on ``task`` after training ``after_task`` (for bootstraps)."""
        row = self._row(task, after_task, split)
        return np.frombuffer(row["correct"].encode(), dtype=np.uint8) - ord("0")

    def example_scores(
        self, task: str, after_task: str, split: str = "eval", measure: str = "nll"
    ) -> np.ndarray:
        """Per-example ``measure`` ('nll' in nats, or 'brier') on ``task`` after ``after_task``."""
        row = self._row(task, after_task, split)
        values = row.get(f"example_{measure}")
        if not isinstance(values, list):
            raise KeyError(
                f"Run {self.spec.label()} recorded no per-example {measure!r} (runs before "
                "curlora 0.3 record accuracy only); read its accuracy, or re-run it."
            )
        return np.asarray(values, dtype=float)

    def has_scores(self) -> bool:
        """Whether the run recorded per-example NLL and Brier scores (curlora 0.3 and later)."""
        return "example_nll" in self.accuracy.columns and bool(
            self.accuracy["example_nll"].map(lambda v: isinstance(v, list)).all()
        )

    def final_validation_nll(self) -> float:
        """Mean validation NLL over every task after the last one (NaN if earlier tasks were not
        validated then: runs recorded before curlora 0.3)."""
        last = self.task_names[-1]
        rows = self.accuracy[
            (self.accuracy["split"] == "val") & (self.accuracy["after_task"] == last)
        ]
        if "nll" not in rows or len(rows) < len(self.task_names) or rows["nll"].isna().any():
            return float("nan")
        return float(rows["nll"].mean())

    @property
    def broke(self) -> bool:
        """Whether training diverged: a training loss or the perplexity after training is not
        a number (the weights then hold NaN or inf, so nothing measured after is meaningful)."""
        losses = np.asarray(self.loss["loss"], dtype=float) if "loss" in self.loss else []
        last = self.perplexity["nll"].iloc[-1] if len(self.perplexity) else None
        after = np.asarray(last if isinstance(last, list) else [], dtype=float)
        return not (np.isfinite(losses).all() and np.isfinite(after).all())

    def _row(self, task: str, after_task: str, split: str) -> pd.Series:
        rows = self.accuracy[
            (self.accuracy["task"] == task)
            & (self.accuracy["after_task"] == after_task)
            & (self.accuracy["split"] == split)
        ]
        if rows.empty:
            raise KeyError(
                f"Run {self.spec.label()} has no {split} row for {task} after {after_task}."
            )
        return rows.iloc[0]

    def perplexity_ratio(self, windows: slice | None = None) -> float:
        """Final over initial perplexity, optionally on a subset of the windows (for its noise)."""
        nll = self.perplexity["nll"]
        first, last = np.asarray(nll.iloc[0]), np.asarray(nll.iloc[-1])
        if windows is not None:
            first, last = first[windows], last[windows]
        return from_nll(last) / from_nll(first)

    def summary(self) -> dict:
        """ACC, BWT, Forgetting (on the eval split), perplexity ratio, per-task accuracies."""
        if "summary" not in self._memo:
            self._memo["summary"] = self._summary()
        return dict(self._memo["summary"])

    def _summary(self) -> dict:
        tasks = self.task_names
        R = self.accuracy_matrix().to_numpy()
        val = self.accuracy_matrix("val")
        ppl = self.perplexity["perplexity"].to_numpy()
        majority = self.majority()
        out = {
            "method": self.spec.method,
            "rank": self.spec.rank,
            "lr": self.spec.lr,
            "sampling": self.spec.sampling,
            "seed": self.spec.seed,
            "order": " → ".join(tasks),
            "ACC": metrics.average_accuracy(R),
            "BWT": metrics.backward_transfer(R),
            "Forgetting": metrics.forgetting(R),
            "ppl_initial": float(ppl[0]),
            "ppl_final": float(ppl[-1]),
            "ppl_ratio": float(ppl[-1] / ppl[0]),
            "adapter_params": self.parameters.get("adapter", 0),
            "head_params": self.parameters.get("head", 0),
        }
        for i, t in enumerate(tasks):
            out[f"own_acc:{t}"] = float(R[i, i])
            out[f"final_acc:{t}"] = float(R[-1, i])
            out[f"val_acc:{t}"] = float(val.iloc[i, i]) if val.notna().any().any() else float("nan")
            out[f"majority:{t}"] = float(majority[t])
        if len(self.layers):
            last = self.layers[self.layers["stage"] == self.layers["stage"].max()]
            out["delta_rel"] = float(last["delta_rel"].mean())
            out["output_shift"] = float(last["output_shift"].mean())
        else:
            out["delta_rel"] = out["output_shift"] = 0.0
        return out

    def to_payload(self) -> dict:
        """Everything as JSON-able values."""
        return {
            "spec": self.spec.to_dict(),
            "parameters": self.parameters,
            "timings": self.timings,
            "environment": self.environment,
            **{k: getattr(self, k).to_dict(orient="records") for k in FRAMES},
        }

    @classmethod
    def from_payload(cls, payload: dict) -> Results:
        """The inverse of ``to_payload``; raises KeyError/TypeError on a malformed payload."""
        frames = {k: pd.DataFrame(payload[k]) for k in FRAMES}
        return cls(
            ExperimentSpec(**payload["spec"]),
            parameters=payload["parameters"],
            timings=payload.get("timings", {}),
            environment=payload.get("environment", {}),
            **frames,
        )

    @classmethod
    def load(cls, path: Path) -> Results:
        """Read a results JSON file."""
        return cls.from_payload(json.loads(Path(path).read_text()))

"""What one finished task of a run records (a stage): the rows its results tables are built from.

A stage is saved as JSON in the run's cache folder (``stage<i>.json``); ``to_dict`` and
``from_dict`` keep that JSON exactly as earlier versions wrote it, so cached stages still load.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StageRecord:
    """One finished task: accuracy, perplexity, per-layer and loss rows, and what it cost."""

    #: Accuracy rows: this and every earlier task on its eval and its val split (runs recorded
    #: before 0.3 hold this task's val split only), with per-example NLL and Brier scores.
    accuracy: list[dict]
    #: ``stage``, ``after_task`` and the per-window ``nll`` (None where it is not measured).
    perplexity: dict
    #: Per-layer statistics (empty where no adapter layer changes).
    layers: list[dict]
    #: The training loss at each step.
    loss: list[dict]
    #: Seconds per phase spent on this stage (None where the stage is not saved).
    timings: dict[str, float] | None = None

    @classmethod
    def after_task(
        cls,
        stage: int,
        task: str,
        accuracy: list[dict],
        nll: list[float] | None,
        layers: list[dict],
        losses: list[float],
        timings: dict[str, float] | None = None,
    ) -> StageRecord:
        """The record of stage ``stage``, reached by training ``task``."""
        return cls(
            accuracy=accuracy,
            perplexity={"stage": stage, "after_task": task, "nll": nll},
            layers=layers,
            loss=[
                {"stage": stage, "task": task, "step": s, "loss": v} for s, v in enumerate(losses)
            ],
            timings=timings,
        )

    def to_dict(self) -> dict:
        """The record as stage JSON (``timings`` only where recorded)."""
        record = {
            "accuracy": self.accuracy,
            "perplexity": self.perplexity,
            "layers": self.layers,
            "loss": self.loss,
        }
        if self.timings is not None:
            record["timings"] = self.timings
        return record

    @classmethod
    def from_dict(cls, record: dict) -> StageRecord:
        """The record stored as ``record`` (a KeyError if it lacks a field)."""
        missing = {"accuracy", "perplexity", "layers", "loss"} - set(record)
        if missing:
            raise KeyError("a stage record needs accuracy, perplexity, layers and loss")
        return cls(
            accuracy=record["accuracy"],
            perplexity=record["perplexity"],
            layers=record["layers"],
            loss=record["loss"],
            timings=record.get("timings"),
        )

"""A notebook's study from its parameters: the design, its runs (cached or computed), the Study."""

from __future__ import annotations

from curlora.experiment.design import Design, study_design
from curlora.experiment.results import Results
from curlora.experiment.sweep import run_many
from curlora.study import Study


def load_study(
    preset: str,
    model: str,
    tasks: list[str],
    rank: int,
    train_size: int,
    val_size: int,
    eval_size: int,
    arms: list[str],
    lrs: dict[str, list[float]],
    seeds: list[int],
    orders: str,
    executor: str = "auto",
) -> tuple[Design, list[Results], Study]:
    """The design that notebook parameters name, its runs and the Study of them."""
    design = study_design(
        preset, model, tasks, rank, train_size, val_size, eval_size, arms, lrs, seeds, orders
    )
    # Cached runs load at once; in the suite the runner has computed the rest beforehand.
    runs = run_many(design.specs(), executor=executor, progress=False)
    return design, runs, Study(runs, base_rank=design.base.rank)

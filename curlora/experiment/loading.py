"""A notebook's study from its parameters: the design, its runs (cached or computed), the study
(of the paper's protocol, or of continued training)."""

from __future__ import annotations

from curlora.domain_study import DomainStudy, domain_specs
from curlora.experiment.design import Design, study_design
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_spec import DomainSpec
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
    arm_seeds: dict[str, list[int]] | None = None,
    executor: str = "auto",
) -> tuple[Design, list[Results], Study]:
    """The design that notebook parameters name, its runs and the Study of them."""
    design = study_design(
        preset,
        model,
        tasks,
        rank,
        train_size,
        val_size,
        eval_size,
        arms,
        lrs,
        seeds,
        orders,
        arm_seeds,
    )
    # Cached runs load at once; in the suite the runner has computed the rest beforehand.
    runs = run_many(design.specs(), executor=executor, progress=False)
    return design, runs, Study(runs, base_rank=design.base.rank)


def load_domain_study(
    model: str,
    domain: str,
    rank: int,
    arms: list[str],
    lrs: dict[str, list[float]],
    seeds: list[int],
    run: dict[str, int],
    executor: str = "auto",
) -> tuple[list[DomainSpec], list[DomainResults], DomainStudy]:
    """The continued-training runs notebook parameters name (protocol 2), and their study."""
    specs = domain_specs(model, domain, rank, arms, lrs, seeds, run)
    runs = run_many(specs, executor=executor, progress=False)
    return specs, runs, DomainStudy(runs, base_rank=rank)

"""An experiment design: arms (method variants) × learning rates × seeds × task orders → specs.

An *arm* names a method variant in one string: ``curlora`` (sampling by eq. 4), ``curlora-norm``
(another sampling mode: ``inverse_eps``, ``norm``, ``uniform``, ``lowest``), ``lora``,
``lora-r1`` (another rank), ``svd``, ``head-only``. Each adapter arm is run at each of its
learning rates, for every seed and task order; head-only, whose head has its own rate, once per
seed and order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from curlora.arms import Arm
from curlora.experiment.spec import ExperimentSpec

ORDERS = ("paper", "reverse", "paper+reverse", "all")


def task_orders(tasks: tuple[str, ...], orders: str) -> list[tuple[str, ...]]:
    """The task sequences of an order setting: the given order, its reverse, both, or all."""
    if orders not in ORDERS:
        raise ValueError(f"orders={orders!r} is unknown; choose one of {', '.join(ORDERS)}.")
    if orders == "all":
        return list(itertools.permutations(tasks))
    if orders == "paper+reverse" and len(tasks) > 1:
        return [tuple(tasks), tuple(reversed(tasks))]
    if orders == "reverse":
        return [tuple(reversed(tasks))]
    return [tuple(tasks)]


@dataclass(frozen=True)
class Design:
    """Which runs a study needs; ``specs()`` lists them (each is one cached run)."""

    base: ExperimentSpec
    arms: tuple[str, ...] = ("curlora", "lora", "svd", "head-only")
    lrs: dict[str, tuple[float, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    orders: str = "paper"
    #: Seeds of the arms that run at other seeds than ``seeds`` (a registered design may run
    #: its secondary arms at fewer seeds than its main ones).
    arm_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for arm in self.arms:
            Arm.parse(arm)  # an unknown arm fails here, naming the forms an arm takes
        stray = sorted(set(self.arm_seeds) - set(self.arms))
        if stray:
            raise ValueError(
                f"arm_seeds names {stray}, which are not among the arms {list(self.arms)}; "
                "give seeds only for arms the design runs."
            )
        missing = [a for a in self.arms if a != "head-only" and not self.rates(a)]
        if missing:
            raise ValueError(f"No learning rates for arm(s) {missing}; give lrs[arm] or lrs['*'].")
        task_orders(self.base.tasks, self.orders)

    def rates(self, arm: str) -> tuple[float, ...]:
        """The learning rates of an arm: its own list, else the '*' list."""
        if arm == "head-only":
            return (self.base.lr,)
        return tuple(self.lrs.get(arm, self.lrs.get("*", ())))

    def seeds_of(self, arm: str) -> tuple[int, ...]:
        """The seeds an arm runs at: its own, else the design's."""
        return tuple(self.arm_seeds.get(arm, self.seeds))

    def all_seeds(self) -> tuple[int, ...]:
        """Every seed any arm runs at."""
        return tuple(sorted({s for arm in self.arms for s in self.seeds_of(arm)}))

    def specs(self) -> list[ExperimentSpec]:
        """Every run of the design: arm × rate × seed × order."""
        out = []
        for tasks in task_orders(self.base.tasks, self.orders):
            for arm in self.arms:
                for lr in self.rates(arm):
                    for seed in self.seeds_of(arm):
                        out.append(
                            self.base.replace(
                                tasks=tasks, lr=lr, seed=seed, **Arm.parse(arm).changes()
                            )
                        )
        return out


def study_design(
    preset: str = "cpu",
    model: str | None = None,
    tasks: list[str] | None = None,
    rank: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    eval_size: int | None = None,
    arms: list[str] = ("curlora", "lora", "head-only"),
    lrs: dict[str, list[float]] | None = None,
    seeds: list[int] = (0, 1, 2),
    orders: str = "paper",
    arm_seeds: dict[str, list[int]] | None = None,
) -> Design:
    """A design from notebook-style parameters: a preset, the fields to change, and the grid.

    None keeps the preset's value. Notebooks 02, 04 and 05 and the notebook runner call this one
    function, so the runner can compute (with progress) exactly the runs a notebook will read.
    """
    from curlora.experiment.presets import preset as make_preset

    changes = {
        "model": model,
        "tasks": tuple(tasks) if tasks is not None else None,
        "rank": rank,
        "train_size": train_size,
        "val_size": val_size,
        "eval_size": eval_size,
    }
    base = make_preset(preset, **{k: v for k, v in changes.items() if v is not None})
    return Design(
        base,
        tuple(arms),
        {k: tuple(v) for k, v in (lrs or {}).items()},
        tuple(seeds),
        orders,
        {arm: tuple(s) for arm, s in (arm_seeds or {}).items()},
    )

"""Synthetic runs whose numbers are set, and studies built from them, for the study and findings
tests: each verdict can then be checked against a known truth."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from curlora.arms import Arm
from curlora.domain_study import DomainStudy
from curlora.experiment import preset
from curlora.experiment.domain_results import DomainResults
from curlora.experiment.domain_spec import DomainSpec
from curlora.experiment.results import Results
from curlora.study import Study

TASKS = ("a", "b", "c")


def fake_run(
    method: str,
    lr: float,
    seed: int,
    own: float,
    final: float,
    ratio: float,
    shift: float,
    val: float | None = None,
    majority: float = 0.5,
    sampling: str = "inverse",
    rank: int = 4,
    tasks: tuple[str, ...] = TASKS,
) -> Results:
    """A run whose numbers are set: own-task accuracy ``own`` on every task, ``final`` for earlier
    tasks after the last one, perplexity ratio ``ratio``."""
    spec = preset(
        "smoke",
        method=method,
        lr=lr,
        seed=seed,
        tasks=tasks,
        eval_size=400,
        sampling=sampling,
        rank=rank,
    )
    rows = []
    for i, after in enumerate(tasks):
        for j, task in enumerate(tasks[: i + 1]):
            acc = own if j == i else (final if i == len(tasks) - 1 else own)
            hits = "1" * int(round(acc * 400)) + "0" * (400 - int(round(acc * 400)))
            rows.append(
                {
                    "stage": i + 1,
                    "after_task": after,
                    "task": task,
                    "split": "eval",
                    "accuracy": acc,
                    "majority": majority,
                    "n": 400,
                    "correct": hits,
                }
            )
        v = own if val is None else val
        rows.append(
            {
                "stage": i + 1,
                "after_task": after,
                "task": after,
                "split": "val",
                "accuracy": v,
                "majority": majority,
                "n": 100,
                "correct": "1" * int(v * 100) + "0" * (100 - int(v * 100)),
            }
        )
    perplexity = pd.DataFrame(
        [
            {"stage": 0, "after_task": None, "perplexity": 10.0, "ratio": 1.0, "nll": [[1.0, 1]]},
            {
                "stage": 3,
                "after_task": tasks[-1],
                "perplexity": 10.0 * ratio,
                "ratio": ratio,
                "nll": [[1.0 + math.log(ratio), 1]],
            },
        ]
    )
    layers = (
        pd.DataFrame(
            [
                {
                    "stage": 3,
                    "after_task": tasks[-1],
                    "layer": "l0",
                    "delta_rel": shift,
                    "output_shift": shift,
                    "delta_norm": shift,
                    "update_norm": 1.0,
                    "delta_sv": [],
                    "u_sv": [],
                }
            ]
        )
        if method != "head-only"
        else pd.DataFrame()
    )
    return Results(spec, pd.DataFrame(rows), perplexity, layers, pd.DataFrame({"loss": [0.5]}))


def synthetic_study(
    curlora_forgets: float,
    lora_forgets: float,
    learned: bool = True,
    cross: bool = False,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> Study:
    base = 0.6 if learned else 0.4  # not learned: every own accuracy stays below majority (0.5)
    runs = []
    for seed in seeds:
        jitter = 0.002 * seed
        runs.append(fake_run("head-only", 0.01, seed, base, base, 1.0, 0.0))
        for k, lr in enumerate((1e-3, 3e-3, 1e-2, 3e-2)):
            gain = 0.02 * (k + 1) + 2 * jitter  # seeds differ: learning is shown by its spread
            # Perplexity rises with learning; CURLoRA's frontier lies above or below LoRA's.
            cur_ratio = 1 + (0.5 if cross else 1.0) * gain * (2 + jitter)
            lora_ratio = 1 + gain * (1 + jitter) * (2.0 if cross else 1.0)
            runs.append(
                fake_run(
                    "curlora", lr, seed, base + gain, base + gain - curlora_forgets, cur_ratio, gain
                )
            )
            runs.append(
                fake_run(
                    "lora", lr / 10, seed, base + gain, base + gain - lora_forgets, lora_ratio, gain
                )
            )
    return Study(runs, base_rank=4)


def single_rate_learners(curlora_ratio: float, peer_sampling: str | None = None) -> Study:
    """Each adapter shown to learn at one rate only (its gain falls at higher rates), with
    about equal validation gains there: no frontier levels, one matched pair of rates."""
    runs = []
    for seed in (0, 1, 2):
        j = 0.01 * seed
        runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0, val=0.6))
        for lr, val, ratio in (
            (1e-3, 0.63 + j, curlora_ratio),
            (3e-3, 0.55, 2.0),
            (1e-2, 0.5, 9.0),
        ):
            runs.append(
                fake_run("curlora", lr, seed, val, val, ratio * (1 + 1e-3 * seed), 0.1, val=val)
            )
        # The peer: LoRA, or CURLoRA with another sampling mode (for the ablation's verdict).
        method, sampling = ("curlora", peer_sampling) if peer_sampling else ("lora", "inverse")
        for lr, val, ratio in ((3e-4, 0.64 + j, 1.0), (1e-3, 0.52, 3.0), (3e-3, 0.45, 50.0)):
            ratio *= 1 + 2e-3 * seed
            runs.append(
                fake_run(method, lr, seed, val, val, ratio, 0.1, val=val, sampling=sampling)
            )
    return Study(runs)


# ------------------------------------------------------------------ protocol 2 (continued training)

#: Wikipedia NLL gained per nat of domain NLL lost, per arm: CURLoRA forgets least.
SLOPES = {"curlora": 0.1, "lora": 1.0, "lora-r1": 0.9, "full": 2.0}


def domain_run(arm: str, lr: float, seed: int, learned: float) -> DomainResults:
    """A run that learned ``learned`` nats and forgot ``SLOPES[arm] × learned`` (with noise)."""
    # Seeded by the run's own numbers (str hashes change between processes).
    rng = np.random.default_rng([seed, round(lr * 1e6), sorted(SLOPES).index(arm)])
    tokens = np.full(16, 100.0)

    def pair(before_per_token: float, change: float, noise: float) -> dict:
        before = np.stack([tokens * before_per_token, tokens], axis=1)
        after = before.copy()
        after[:, 0] += tokens * (change + rng.normal(0, noise, len(tokens)))
        return {"before": before.tolist(), "after": after.tolist()}

    learned = learned * (1 + rng.normal(0, 0.05))
    spec = DomainSpec(**Arm.parse(arm).changes(), lr=lr, seed=seed)
    return DomainResults(
        spec,
        nll={
            "target-val": pair(1.0, -learned, 0.001),
            "target-eval": pair(1.0, -learned, 0.001),
            "general-val": pair(2.5, SLOPES[arm] * learned, 0.001),
            "general-eval": pair(2.5, SLOPES[arm] * learned, 0.002),
        },
        loss=[1.0, 0.9],
        parameters={"adapter": 1},
    )


def domain_study(seeds=range(5)) -> DomainStudy:
    runs = [
        domain_run(arm, lr, seed, learned)
        for arm in SLOPES
        for lr, learned in zip((1e-4, 1e-3, 1e-2), (0.02, 0.06, 0.12), strict=True)
        for seed in seeds
    ]
    return DomainStudy(runs, base_rank=16)

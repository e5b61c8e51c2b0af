"""Statistics for verdicts, checked against scipy and against cases built to flip each verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst

from curlora import findings, stats
from curlora.experiment import preset
from curlora.experiment.results import Results
from curlora.study import Study


def test_t_interval_matches_scipy():
    x = [0.61, 0.58, 0.66, 0.63]
    i = stats.t_interval(x)
    lo, hi = sst.ttest_1samp(x, 0).confidence_interval(0.95)
    assert (i.lo, i.hi) == pytest.approx((lo, hi)) and i.n == 4 and i.df == 3
    three = stats.t_interval([1.0, 2.0, 3.0])
    assert three.half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) = 4.30
    assert math.isnan(stats.t_interval([1.0]).half) and stats.t_interval([]).n == 0


def test_identical_replicates_show_nothing():
    # Every seed +1 of 300 examples: a zero-width interval above zero, yet no spread measured.
    assert not stats.t_interval([1 / 300] * 3).shown_positive
    # The same in practice: a mean over tasks leaves rounding-level differences between seeds.
    assert not stats.t_interval(
        [(0.34 - 0.33) / 3, (0.21 - 0.2) / 3, (0.71 - 0.7) / 3]
    ).shown_positive
    assert stats.t_interval([0.01, 0.012, 0.011]).shown_positive
    assert not stats.t_interval([0.01]).shown_positive


def test_paired_uses_only_shared_replicates():
    a, b = {0: 0.7, 1: 0.8, 2: 0.75}, {0: 0.6, 1: 0.7, 3: 0.1}
    i = stats.paired(a, b)
    assert i.n == 2 and i.mean == pytest.approx(0.1)


def test_detectable_effect():
    # Many replicates: the familiar ≈ 2.8 × SE; three seeds: t quantiles make it ≈ 5.4 × SE.
    assert stats.detectable_effect(1.0, 10_000) == pytest.approx(1.96 + 0.8416, abs=0.01)
    assert stats.detectable_effect(1.0, 2) == pytest.approx(4.303 + 1.061, abs=0.01)
    assert math.isnan(stats.detectable_effect(1.0, 0))


def test_bootstrap_se_matches_the_binomial_se():
    rng = np.random.default_rng(0)
    hits = (rng.random(400) < 0.7).astype(float)
    se = stats.bootstrap_se([hits], lambda a: a[0].mean(), n_boot=2000)
    assert se == pytest.approx(math.sqrt(0.7 * 0.3 / 400), rel=0.15)


def test_frontier_keeps_the_rising_part_and_interpolates():
    points = [(1e-3, 0.01, 1.00), (3e-3, 0.05, 1.02), (1e-2, 0.04, 1.5), (3e-2, 0.08, 3.0)]
    xs, ys = stats.frontier(points)
    assert list(xs) == [0.01, 0.05, 0.08] and list(ys) == [1.00, 1.02, 3.0]
    assert stats.at_plasticity((xs, ys), 0.03) == pytest.approx(1.01)
    assert math.isnan(stats.at_plasticity((xs, ys), 0.2))
    assert stats.common_range([(xs, ys), (np.array([0.0, 0.06]), np.array([1, 1]))]) == (0.01, 0.06)
    assert stats.common_range([(xs, ys), (np.array([0.1, 0.2]), np.array([1, 1]))]) is None


# ---------------------------------------------------------------- synthetic runs → verdicts

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


def _study(
    curlora_forgets: float, lora_forgets: float, learned: bool = True, cross: bool = False
) -> Study:
    base = 0.6 if learned else 0.4  # not learned: every own accuracy stays below majority (0.5)
    runs = []
    for seed in (0, 1, 2):
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


def test_verdicts_flip_with_the_data():
    forgets = _study(curlora_forgets=0.1, lora_forgets=0.1)
    keeps = _study(curlora_forgets=0.0, lora_forgets=0.0)
    text = {k: " ".join(findings.verdicts(s)) for k, s in (("forgets", forgets), ("keeps", keeps))}
    assert "forgetting is positive" in text["forgets"]
    assert "forgetting is positive" not in text["keeps"] and "is excluded" in text["keeps"]
    # Learned vs not learned: at the majority level nothing can be forgotten.
    unlearned = " ".join(findings.verdicts(_study(0.0, 0.0, learned=False)))
    assert "not learned above majority" in unlearned or "cannot be measured" in unlearned
    # The frontier comparison flips sign when the frontiers cross over.
    above = _study(0.0, 0.0).compare("curlora", "lora", "ppl_ratio")
    below = _study(0.0, 0.0, cross=True).compare("curlora", "lora", "ppl_ratio")
    assert above.interval.lo > 0 and below.interval.hi < 0
    assert "is positive" in findings.comparison_reading(above)
    assert "is negative" in findings.comparison_reading(below)


def test_each_lora_arm_gets_its_own_equal_learning_verdict():
    # CURLoRA's frontier lies above rank-4 LoRA's and below rank-1 LoRA's: opposite verdicts.
    runs = []
    for seed in (0, 1, 2):
        jitter = 0.002 * seed
        runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0))
        for k, lr in enumerate((1e-3, 3e-3, 1e-2, 3e-2)):
            gain = 0.02 * (k + 1) + 2 * jitter
            own = 0.6 + gain
            runs.append(fake_run("curlora", lr, seed, own, own, 1 + gain * (2 + jitter), gain))
            runs.append(fake_run("lora", lr / 10, seed, own, own, 1 + gain * (1 + jitter), gain))
            runs.append(fake_run("lora", lr, seed, own, own, 1 + gain * (4 + jitter), gain, rank=1))
    study = Study(runs, base_rank=4)
    assert study.arms == ["head-only", "curlora", "lora", "lora-r1"]
    by_peer = {
        peer: next(
            v
            for v in findings.verdicts(study)
            if v.startswith(f"*CURLoRA forgets less than {peer} ")
        )
        for peer in ("LoRA", "LoRA r1")
    }
    assert "CURLoRA higher (**contradicted**)" in by_peer["LoRA"].split(";")[0]
    assert "CURLoRA lower (**holds**)" in by_peer["LoRA r1"].split(";")[0]


def test_frontiers_that_do_not_overlap_are_not_compared():
    runs = []
    for seed in (0, 1, 2):
        runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0))
        spread = 0.0025 * seed  # both are shown to learn: what keeps them apart is the frontiers
        for k, lr in enumerate((1e-3, 3e-3)):
            runs.append(fake_run("curlora", lr, seed, 0.62 + 0.01 * k + spread, 0.6, 1.01, 0.01))
            runs.append(fake_run("lora", lr, seed, 0.80 + 0.05 * k + spread, 0.7, 1.2, 0.1))
    comparison = Study(runs).compare("curlora", "lora", "ppl_ratio")
    assert not comparison.levels
    assert "reach no common plasticity" in findings.comparison_reading(comparison)
    # Without spread CURLoRA is not shown to learn: the more basic reason is the one given.
    flat = [r for r in runs if r.spec.method != "curlora"] + [
        fake_run("curlora", lr, seed, 0.62 + 0.01 * k, 0.6, 1.01, 0.01)
        for seed in (0, 1, 2)
        for k, lr in enumerate((1e-3, 3e-3))
    ]
    reason = Study(flat).compare("curlora", "lora", "ppl_ratio").reason
    assert reason == "curlora is not shown to learn at any rate"


def test_operating_rate_is_chosen_on_validation_not_evaluation():
    runs = [fake_run("head-only", 0.01, s, 0.6, 0.6, 1.0, 0.0) for s in (0, 1)]
    for s in (0, 1):
        # 1e-3 looks best on the eval split, 3e-3 on validation: validation decides.
        runs.append(
            fake_run("curlora", 1e-3, s, own=0.9, final=0.9, ratio=1.0, shift=0.0, val=0.62)
        )
        runs.append(
            fake_run("curlora", 3e-3, s, own=0.7, final=0.7, ratio=1.0, shift=0.0, val=0.80)
        )
    assert Study(runs).operating_rate("curlora") == 3e-3


def test_ablation_verdict_and_table():
    runs = []
    for seed in (0, 1, 2):
        runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0))
        for k, lr in enumerate((1e-3, 3e-3, 1e-2)):
            gain = 0.03 * (k + 1) + 0.004 * seed  # seeds differ: learning is shown by its spread
            runs.append(
                fake_run(
                    "curlora", lr, seed, 0.6 + gain, 0.6 + gain, 1 + 2 * gain + 0.001 * seed, gain
                )
            )
            runs.append(
                fake_run(
                    "curlora",
                    lr,
                    seed,
                    0.6 + gain,
                    0.6 + gain,
                    1 + 2 * gain + 0.002 * seed,
                    gain,
                    sampling="norm",
                )
            )
    study = Study(runs)
    table = findings.ablation_table(study)
    assert list(table["label"]) == ["CURLoRA vs CURLoRA (norm sampling)"]
    assert abs(table["matched_mean"].iloc[0]) < 0.5  # the same frontier: no difference
    assert "equal learning" in findings.ablation_verdict(study)


def _single_rate_learners(curlora_ratio: float, peer_sampling: str | None = None) -> Study:
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


def test_a_matched_pair_of_rates_decides_when_frontiers_cannot():
    higher = _single_rate_learners(curlora_ratio=1.05)
    assert not higher.compare("curlora", "lora", "ppl_ratio").levels
    rate_a, rate_b, gap = higher.matched_pair("curlora", "lora")
    assert (rate_a, rate_b) == (1e-3, 3e-4) and abs(gap.mean) < 0.02
    text = findings.equal_learning_verdict(higher, "lora")
    assert "at the nearest matched pair of rates, CURLoRA higher (**contradicted**)" in text
    lower = findings.equal_learning_verdict(_single_rate_learners(curlora_ratio=0.95), "lora")
    assert "at the nearest matched pair of rates, CURLoRA lower (**holds**)" in lower
    ablation = findings.ablation_verdict(_single_rate_learners(1.05, peer_sampling="norm"))
    assert "more perplexity change at the nearest matched pair of rates" in ablation


def test_each_task_order_gets_its_own_verdicts():
    # Perplexity holds in the paper's order and doubles in the reverse: the verdict hinges on it.
    reverse = tuple(reversed(TASKS))
    runs = []
    for seed in (0, 1, 2):
        for tasks, ratio in ((TASKS, 1.0), (reverse, 2.0)):
            runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0, tasks=tasks))
            runs.append(
                fake_run(
                    "curlora", 1e-3, seed, 0.7, 0.7, ratio * (1 + 1e-4 * seed), 0.1, tasks=tasks
                )
            )
    study = Study(runs)
    assert study.of_order(reverse).orders == [reverse]
    paper_part, reverse_part = findings.order_verdicts(study).split("**c → b → a alone**")
    assert "**Holds here**" in paper_part and "Contradicted" not in paper_part
    assert "**Contradicted here**" in reverse_part
    one = Study([r for r in runs if r.spec.tasks == TASKS])
    assert "not tested here" in findings.order_verdicts(one)
    with pytest.raises(ValueError, match="No runs in task order"):
        one.of_order(reverse)


def test_the_sampling_ablation_is_read_per_task_order():
    # Eq. 4 moves perplexity more than norm sampling in the paper's order, less in the reverse.
    reverse = tuple(reversed(TASKS))
    runs = []
    for seed in (0, 1, 2):
        for tasks, (eq4, norm) in ((TASKS, (1.05, 1.0)), (reverse, (1.0, 1.05))):
            runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0, tasks=tasks))
            own = 0.7 + 0.01 * seed
            for sampling, ratio in (("inverse", eq4), ("norm", norm)):
                wobble = 1 + 1e-3 * seed * (2 if sampling == "norm" else 1)
                runs.append(
                    fake_run(
                        "curlora",
                        1e-3,
                        seed,
                        own,
                        own,
                        ratio * wobble,
                        0.1,
                        val=own,
                        sampling=sampling,
                        tasks=tasks,
                    )
                )
    study = Study(runs)
    text = findings.order_verdicts(study, findings.ablation_verdicts)
    paper_part, reverse_part = text.split("**c → b → a alone**")
    assert "more perplexity change at the nearest matched pair" in paper_part
    assert "less perplexity change at the nearest matched pair" in reverse_part
    assert "The sampling ablation from each task order alone" in findings.summary_markdown(
        study, study
    )
    assert (
        findings.ablation_verdicts(Study([r for r in runs if r.spec.sampling == "inverse"])) == []
    )


def test_operating_table_carries_both_kinds_of_interval():
    table = findings.operating_table(_study(curlora_forgets=0.1, lora_forgets=0.0))
    assert list(table.index) == ["head-only", "CURLoRA", "LoRA"]
    acc = table.loc["CURLoRA", "ACC (over seeds)"]
    mean, lo, hi = (
        float(x) for x in acc.replace("[", "").replace("]", "").replace(",", "").split()
    )
    assert lo <= mean <= hi
    assert 0.0 < float(table.loc["CURLoRA", "per-run SE of ACC (bootstrap)"]) < 0.05
    assert table.loc["CURLoRA", "forgetting, learned tasks (pts)"].startswith("+10.0")


def test_learning_is_decided_on_validation_not_on_the_reported_split():
    runs = [fake_run("head-only", 0.01, s, 0.5, 0.5, 1.0, 0.0) for s in (0, 1, 2)]
    # High on the eval split, at majority on validation: not shown learned, so no forgetting.
    runs += [
        fake_run("curlora", 1e-3, s, own=0.8, final=0.6, ratio=1.0, shift=0.0, val=0.5 + 0.001 * s)
        for s in (0, 1, 2)
    ]
    study = Study(runs)
    assert study.learned_tasks("curlora") == []
    assert study.interval("curlora", "forgetting").n == 0
    assert "cannot be measured" in " ".join(findings.verdicts(study))


def test_a_seed_missing_from_one_arm_is_dropped_not_fatal():
    study = _study(0.0, 0.0)
    runs = [r for r in study.runs if not (r.spec.method == "lora" and r.spec.seed == 2)]
    comparison = Study(runs).compare("curlora", "lora", "ppl_ratio")
    assert comparison.levels and comparison.interval.n == 2


def test_perplexity_is_averaged_on_the_log_scale():
    runs = [fake_run("head-only", 0.01, s, 0.6, 0.6, 1.0, 0.0) for s in (0, 1, 2)]
    # One seed breaks (×1000): on the log scale the interval stays a possible ratio.
    runs += [
        fake_run("curlora", 1e-3, s, 0.7, 0.7, r, 0.1)
        for s, r in zip((0, 1, 2), (1.01, 1.02, 1000.0), strict=True)
    ]
    i = Study(runs).interval("curlora", "ppl_ratio")
    assert math.exp(i.mean) == pytest.approx((1.01 * 1.02 * 1000) ** (1 / 3), rel=1e-6)
    text = findings.ratio_reading(i)
    # A change this size reads as factors, and the lower bound is still a ratio above zero.
    low = text.split("[")[1].split(",")[0]
    assert low.startswith("×") and float(low[1:].replace(",", "")) > 0
    small = Study(runs[:3] + runs[3:5]).interval("curlora", "ppl_ratio")
    assert "%" in findings.ratio_reading(small) and "×" not in findings.ratio_reading(small)


def test_runs_of_different_configurations_are_not_mixed():
    a = fake_run("curlora", 1e-3, 0, 0.7, 0.7, 1.0, 0.1)
    b = fake_run("curlora", 1e-3, 0, 0.7, 0.7, 1.0, 0.1)
    b.spec = b.spec.replace(train_size=64)
    with pytest.raises(ValueError, match="differ in other settings"):
        Study([a, b])


def test_rates_need_a_validation_split_to_be_chosen():
    runs = []
    for s in (0, 1):
        for lr in (1e-3, 3e-3):
            r = fake_run("curlora", lr, s, 0.7, 0.7, 1.0, 0.1)
            r.accuracy = r.accuracy[r.accuracy["split"] == "eval"]
            runs.append(r)
    with pytest.raises(ValueError, match="no validation split"):
        Study(runs).operating_rate("curlora")


def test_equal_learning_needs_both_methods_shown_to_learn():
    runs = []
    for seed in (0, 1, 2):
        runs.append(fake_run("head-only", 0.01, seed, 0.6, 0.6, 1.0, 0.0))
        jitter = (-0.02, 0.0, 0.02)[seed]
        for k, lr in enumerate((1e-3, 3e-3)):
            # CURLoRA's gain never clears its noise; LoRA's does at its higher rate.
            runs.append(
                fake_run("curlora", lr, seed, 0.6 + 0.005 * k + jitter, 0.6, 1.01 + 0.01 * k, 0.01)
            )
            runs.append(fake_run("lora", lr, seed, 0.6 + 0.01 * k + 0.0005 * seed, 0.6, 1.02, 0.02))
    comparison = Study(runs).compare("curlora", "lora", "ppl_ratio")
    assert not comparison.levels and "not shown to learn" in comparison.reason


def test_plasticity_is_remembered_per_run_and_split():
    base = fake_run("head-only", 0.01, 0, 0.6, 0.6, 1.0, 0.0)
    run = fake_run("curlora", 1e-3, 0, own=0.9, final=0.9, ratio=1.0, shift=0.0, val=0.7)
    study = Study([base, run])
    assert study.plasticity(run, "val") == pytest.approx(0.1)
    assert study.plasticity(run, "eval") == pytest.approx(0.3)
    assert study.plasticity(run, "val") == pytest.approx(0.1)
    # A run the study does not hold, asked after the first: its own value, not a remembered one.
    other = fake_run("curlora", 1e-3, 0, own=0.65, final=0.65, ratio=1.0, shift=0.0, val=0.65)
    assert study.plasticity(other, "val") == pytest.approx(0.05)


def test_a_subset_of_seeds_keeps_the_arms_names_whatever_run_comes_first():
    # The explorer redraws from a subset; with LoRA r1 listed first, a subset built from the first
    # run's rank would call rank-4 LoRA "lora-r4" and rank-1 LoRA "lora".
    runs = [fake_run("lora", 1e-3, s, 0.6, 0.6, 1.0, 0.1, rank=1) for s in (0, 1)]
    runs += [fake_run("lora", 1e-3, s, 0.6, 0.6, 1.0, 0.1) for s in (0, 1)]
    study = Study(runs, base_rank=4)
    assert study.arms == ["lora-r1", "lora"]
    assert study.of_order(TASKS).of_seeds([1]).arms == ["lora-r1", "lora"]
    with pytest.raises(ValueError, match="No runs with seeds"):
        study.of_seeds([7])

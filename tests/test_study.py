"""A study's numbers from synthetic runs: operating rates, learning, frontiers, seeds, log scale."""

from __future__ import annotations

import math
import re

import pytest
from synthetic_runs import TASKS, fake_run, synthetic_study

from curlora import findings, readings
from curlora.study import Study


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
    study = synthetic_study(0.0, 0.0)
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
    text = readings.ratio_reading(i)
    # A change this size reads as factors, and the lower bound is still a ratio above zero.
    low = text.split("[")[1].split(",")[0]
    assert low.startswith("×") and not low.startswith("×-") and "−" not in low.split("10")[0]
    # Far from 1 it reads as an order of magnitude: a mantissa times a power of ten.
    assert re.fullmatch(r"×\d+(\.\d+)?(×10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)?", low), low
    small = Study(runs[:3] + runs[3:5]).interval("curlora", "ppl_ratio")
    assert "%" in readings.ratio_reading(small) and "×" not in readings.ratio_reading(small)


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


def test_a_rate_where_a_run_broke_has_no_mean_in_tables_and_figures():
    from curlora.plots.forgetting import frontiers

    runs = synthetic_study(0.0, 0.0).runs
    diverged = next(
        r for r in runs if r.spec.method == "curlora" and r.spec.lr == 3e-2 and r.spec.seed == 1
    )
    diverged.perplexity.at[1, "nll"] = [[math.nan, 1]]  # the weights went non-finite
    # The seed's other task order did not break: its value must not stand in for the seed.
    other_order = fake_run("curlora", 3e-2, 1, 0.7, 0.7, 1.1, 0.1, tasks=TASKS[::-1])
    study = Study([*runs, other_order], base_rank=4)
    assert diverged.broke and study.broke("curlora", 3e-2) and not study.broke("curlora", 1e-2)
    # Plasticity of a diverged run is a number (its heads still predict a class), yet undefined.
    values = study.per_seed("curlora", 3e-2, study.plasticity)
    assert set(values) == {0, 1, 2} and math.isnan(values[1]) and not math.isnan(values[0])
    assert math.isnan(study.interval("curlora", "ppl_ratio", 3e-2).mean)
    assert math.isnan(study.gain_over_head("curlora", 3e-2).mean)
    assert math.isnan(study.compare_at_rate("curlora", "curlora", "ppl_ratio", 3e-2, 1e-3).mean)
    assert 3e-2 not in study.rate_plasticity("curlora") and 1e-2 in study.rate_plasticity("curlora")
    assert study.operating_rate("curlora") != 3e-2
    caption = frontiers(study, ["curlora", "lora"]).texts[-1].get_text()
    assert "a rate where a run broke" in caption
    assert "broke" not in frontiers(synthetic_study(0.0, 0.0)).texts[-1].get_text()
    # Broken at every rate: no rate is named as chosen (it had been the lowest).
    for lr in study.rates("lora"):
        run = next(r for r in study.runs_of("lora", lr) if r.spec.seed == 0)
        run.perplexity.at[1, "nll"] = [[math.nan, 1]]
    with pytest.raises(ValueError, match="At every rate of lora .* a run broke"):
        Study(study.runs, base_rank=4).operating_rate("lora")

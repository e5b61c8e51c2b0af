"""Statistics for verdicts, checked against scipy and against cases built to flip each verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from curlora import stats


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


def test_detectable_effect_has_the_power_it_names():
    # Many replicates: the familiar ≈ 2.8 × SE.
    assert stats.detectable_effect(1.0, 10_000) == pytest.approx(1.96 + 0.8416, abs=0.01)
    # Three seeds: the shortcut (t.975 + t.8) × SE = 5.36 × SE has 77% power; 80% needs 5.65.
    for df in (2, 4, 9):
        effect = stats.detectable_effect(1.0, df)
        crit = sst.t.ppf(0.975, df)
        power = sst.nct.sf(crit, df, effect) + sst.nct.cdf(-crit, df, effect)
        assert power == pytest.approx(0.8, abs=1e-6)
    shortcut = sst.t.ppf(0.975, 2) + sst.t.ppf(0.8, 2)
    assert sst.nct.sf(sst.t.ppf(0.975, 2), 2, shortcut) == pytest.approx(0.77, abs=0.01)
    assert stats.detectable_effect(1.0, 2) == pytest.approx(5.65, abs=0.01)
    # Where scipy's noncentral t fails (df = 1), the integral still answers.
    assert stats.detectable_effect(1.0, 1) > stats.detectable_effect(1.0, 2)
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

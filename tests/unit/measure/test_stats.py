"""The lift statistic: Newcombe's interval, the pooled z-test, and the interval's coverage."""

from __future__ import annotations

import random

import pytest
from scipy.stats import binomtest, chi2_contingency

from streams.measure.stats import Z95, lift, newcombe_ci, two_proportion_p_value, wilson


def test_wilson_interval_matches_scipys():
    expected = binomtest(7, 40).proportion_ci(0.95, method="wilson")
    assert wilson(7, 40) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80
    low, high = newcombe_ci(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_newcombe_interval_stays_within_minus_one_and_one_and_holds_the_lift():
    for x1, n1, x2, n2 in [(0, 10, 10, 10), (10, 10, 0, 10), (0, 5, 0, 7), (3, 3, 3, 3)]:
        low, high = newcombe_ci(x1, n1, x2, n2)
        assert -1.0 <= low <= x1 / n1 - x2 / n2 <= high <= 1.0


def test_p_value_is_pearsons_chi_squared_without_correction():
    table = [[30, 70], [18, 82]]
    expected = chi2_contingency(table, correction=False).pvalue
    assert two_proportion_p_value(30, 100, 18, 100) == pytest.approx(expected, rel=1e-9)


def test_p_value_is_one_when_neither_arm_can_differ():
    assert two_proportion_p_value(0, 50, 0, 60) == 1.0
    assert two_proportion_p_value(50, 50, 60, 60) == 1.0


def test_lift_is_none_when_an_arm_is_empty_and_relative_lift_none_when_holdout_rate_is_zero():
    assert lift(3, 10, 0, 0) is None
    assert lift(0, 0, 3, 10) is None
    measured = lift(3, 10, 0, 10)
    assert measured is not None and measured.relative is None
    assert measured.lift == pytest.approx(0.3)
    other = lift(30, 100, 20, 100)
    assert other is not None and other.relative == pytest.approx(0.5)


def test_the_95_interval_covers_the_true_lift_95_percent_of_500_seeded_a_a_runs():
    rng = random.Random(14)
    covered = 0
    runs = 500
    for _ in range(runs):
        n1, n2 = rng.randint(200, 2000), rng.randint(50, 400)
        p = rng.uniform(0.02, 0.4)
        x1 = sum(rng.random() < p for _ in range(n1))
        x2 = sum(rng.random() < p for _ in range(n2))
        low, high = newcombe_ci(x1, n1, x2, n2)
        covered += low <= 0.0 <= high
    assert 0.92 <= covered / runs <= 0.98, covered / runs


def test_z95_is_the_two_sided_normal_quantile():
    assert abs(Z95 - 1.959963984540054) < 1e-12

"""The results' statistics against published worked examples."""

from __future__ import annotations

import pytest

from mcp_engine.experiments.stats import critical_z, two_proportion_test, wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion: comparison of
        # seven methods. Statistics in Medicine 17, 857-872: the paper's four worked examples (81/263,
        # 15/148, 0/20, 1/29) under its method 3, the Wilson score interval without continuity
        # correction, to the paper's four decimals.
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe_1998(successes: int, trials: int, low: float, high: float) -> None:
    got = wilson_interval(successes, trials)
    assert (round(got[0], 4), round(got[1], 4)) == (low, high)


def test_two_proportion_test_matches_statsmodels_documented_example() -> None:
    # statsmodels' proportions_ztest docstring example (5 of 83 against 12 of 99: p-value 0.159), whose
    # test suite (statsmodels/stats/tests/test_proportion.py, GH 2969) pins z = -1.4078304151258787
    # and p = 0.15918129181156992 for the pooled two-sided test.
    test = two_proportion_test(5, 83, 12, 99)
    assert test is not None
    assert test.z == pytest.approx(-1.4078304151258787, abs=1e-12)
    assert test.p_value == pytest.approx(0.15918129181156992, abs=1e-12)
    assert test.difference == pytest.approx(5 / 83 - 12 / 99)
    assert not test.significant()


def test_the_textbook_critical_values() -> None:
    assert critical_z() == pytest.approx(1.959964, abs=1e-6)
    assert critical_z(0.99) == pytest.approx(2.575829, abs=1e-6)


def test_a_clear_difference_is_significant_and_its_sign_kept() -> None:
    test = two_proportion_test(300, 500, 200, 500)
    assert test is not None
    assert test.z > 6
    assert test.p_value < 1e-9
    assert test.significant()
    flipped = two_proportion_test(200, 500, 300, 500)
    assert flipped is not None
    assert flipped.z == pytest.approx(-test.z)
    assert flipped.p_value == pytest.approx(test.p_value)


def test_degenerate_inputs_never_divide_by_zero() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert two_proportion_test(0, 0, 5, 10) is None
    assert two_proportion_test(5, 10, 0, 0) is None
    for same in (two_proportion_test(0, 10, 0, 20), two_proportion_test(10, 10, 20, 20)):
        assert same is not None
        assert (same.z, same.p_value, same.significant()) == (0.0, 1.0, False)
    low, high = wilson_interval(20, 20)
    assert 0 < low < 1
    assert high == 1.0

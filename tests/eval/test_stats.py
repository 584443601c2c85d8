"""Hedges' g and the paired bootstrap against values worked out by hand."""

import pytest

from eval.stats import NO_SPREAD_G, Thresholds, compare, hedges_g, overall_verdict


def test_hedges_g_by_hand() -> None:
    # Means 0.75 and 0.25, both sample variances 0.25, so s_pooled = 0.5 and d = 1;
    # J = 1 - 3 / (4 * 8 - 9) = 20 / 23.
    assert hedges_g(candidate=[1, 0, 0, 0], reference=[1, 1, 1, 0]) == pytest.approx(20 / 23)
    assert hedges_g(candidate=[1, 1, 1, 0], reference=[1, 0, 0, 0]) == pytest.approx(-20 / 23)


def test_hedges_g_of_unequal_spreads_by_hand() -> None:
    # reference mean 2, variance 1; candidate mean 1, variance 4 (n = 3 each):
    # s_pooled = sqrt((2 * 1 + 2 * 4) / 4) = sqrt(2.5); J = 1 - 3 / 15 = 0.8.
    assert hedges_g(candidate=[-1, 1, 3], reference=[1, 2, 3]) == pytest.approx(0.8 * 1 / 2.5**0.5)


def test_no_spread_gives_zero_or_the_cap() -> None:
    assert hedges_g([1, 1, 1], [1, 1, 1]) == 0.0
    assert hedges_g([0, 0, 0], [1, 1, 1]) == NO_SPREAD_G
    with pytest.raises(ValueError):
        hedges_g([1], [0])


def test_a_clear_decline_is_rot_and_its_interval_excludes_zero() -> None:
    reference = [1.0] * 18 + [0.0] * 2
    candidate = [1.0] * 4 + [0.0] * 16
    comparison = compare(candidate, reference, Thresholds())
    assert comparison.verdict == "rot"
    assert 0 < comparison.low <= comparison.g <= comparison.high
    assert (comparison.candidate, comparison.reference) == (0.2, 0.9)


def test_identical_scores_are_ok_and_improvement_is_never_a_finding() -> None:
    scores = [0.0, 1.0, 1.0, 0.0, 1.0]
    same = compare(scores, scores, Thresholds())
    assert (same.g, same.low, same.high, same.verdict) == (0.0, 0.0, 0.0, "ok")
    better = compare([1.0] * 10, [0.0, 1.0] * 5, Thresholds())
    assert better.g < 0 and better.verdict == "ok"


def test_a_small_noisy_decline_only_warns() -> None:
    # One item of eight flips: g = 0.22, between the warn and rot thresholds.
    reference = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    candidate = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    comparison = compare(candidate, reference, Thresholds())
    assert 0.15 < comparison.g < 0.3 and comparison.low <= 0
    assert comparison.verdict == "warn"


def test_a_large_decline_on_few_items_warns_when_its_interval_includes_zero() -> None:
    reference, candidate = [1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]
    comparison = compare(candidate, reference, Thresholds())
    assert comparison.g > 0.3 and comparison.low <= 0
    assert comparison.verdict == "warn"


def test_the_bootstrap_is_deterministic_under_its_seed() -> None:
    reference, candidate = [1.0, 0.5, 0.2, 0.9, 0.4], [0.8, 0.1, 0.3, 0.7, 0.2]
    assert compare(candidate, reference, Thresholds(), seed=3) == compare(
        candidate, reference, Thresholds(), seed=3
    )


def test_the_overall_verdict_is_the_worst() -> None:
    assert overall_verdict(["ok", "rot", "warn"]) == "rot"
    assert overall_verdict(["ok", "warn"]) == "warn"
    assert overall_verdict([]) == "ok"

"""Average accuracy, backward transfer and forgetting against hand-computed matrices."""

from pathlib import Path

import pytest

from eval.metrics import (
    StabilityTracker,
    area_under_forgetting_curve,
    continual_metrics,
    forgetting_curve,
    forward_transfer,
)


def test_three_tasks_by_hand() -> None:
    scores = [
        [0.9, None, None],
        [0.6, 0.8, None],
        [0.3, 0.7, 1.0],
    ]
    metrics = continual_metrics(scores)
    assert metrics.average_accuracy == pytest.approx((0.3 + 0.7 + 1.0) / 3)
    assert metrics.backward_transfer == pytest.approx(((0.3 - 0.9) + (0.7 - 0.8)) / 2)
    assert metrics.forgetting == pytest.approx(((0.9 - 0.3) + (0.8 - 0.7)) / 2)
    assert metrics.final_task == 1.0


def test_forgetting_uses_the_best_earlier_score_not_the_first() -> None:
    scores = [
        [0.5, None, None],
        [0.8, 0.6, None],  # task 0 improved after task 1 (positive transfer) ...
        [0.4, 0.6, 0.9],  # ... then dropped
    ]
    metrics = continual_metrics(scores)
    assert metrics.forgetting == pytest.approx(((0.8 - 0.4) + 0.0) / 2)
    assert metrics.backward_transfer == pytest.approx(((0.4 - 0.5) + 0.0) / 2)


def test_area_under_the_forgetting_curve_averages_forgetting_after_each_task() -> None:
    scores = [
        [0.9, None, None],
        [0.6, 0.8, None],  # after task 1: task 0 lost 0.3
        [0.3, 0.7, 1.0],  # after task 2: (0.6 + 0.1) / 2
    ]
    assert forgetting_curve(scores) == pytest.approx([0.3, 0.35])
    assert area_under_forgetting_curve(scores) == pytest.approx(0.325)
    # A method that forgets early and recovers has a larger area than its final forgetting.
    recovering = [[0.9, None, None], [0.1, 0.8, None], [0.9, 0.8, 1.0]]
    assert continual_metrics(recovering).forgetting == 0.0
    assert area_under_forgetting_curve(recovering) == pytest.approx(0.4)
    assert area_under_forgetting_curve([[0.5]]) == 0.0


def test_one_task_has_nothing_to_forget() -> None:
    metrics = continual_metrics([[0.75]])
    assert (metrics.average_accuracy, metrics.backward_transfer, metrics.forgetting) == (0.75, 0.0, 0.0)


def test_a_never_learned_task_counts_zero_forgetting_and_zero_accuracy() -> None:
    scores = [
        [0.0, None],
        [0.0, 0.9],
    ]
    metrics = continual_metrics(scores)
    assert metrics.forgetting == 0.0
    assert metrics.backward_transfer == 0.0
    assert metrics.average_accuracy == pytest.approx(0.45)


def test_missing_or_ragged_scores_are_refused() -> None:
    with pytest.raises(ValueError):
        continual_metrics([[0.5, None], [None, 0.5]])
    with pytest.raises(ValueError):
        continual_metrics([[0.5], [0.5, 0.5]])


def test_forward_transfer_by_hand() -> None:
    scores = [
        [0.9, 0.2, 0.1],  # before learning task 1 the model already scored 0.2 on it (base: 0.0)
        [0.6, 0.8, 0.4],  # and 0.4 on task 2 before learning it (base: 0.1)
        [0.3, 0.7, 1.0],
    ]
    assert forward_transfer(scores, [0.5, 0.0, 0.1]) == pytest.approx(((0.2 - 0.0) + (0.4 - 0.1)) / 2)


def test_forward_transfer_needs_the_scores_before_each_task() -> None:
    assert forward_transfer([[0.9, None], [0.5, 0.8]], [0.1, 0.0]) is None
    assert forward_transfer([[0.9]], [0.1]) == 0.0


def test_stability_tracker_by_hand() -> None:
    tracker = StabilityTracker(window=2)
    tracker.update({"a": 0.8, "b": 0.6}, current=0.0)
    tracker.update({"a": 0.2, "b": 0.6}, current=0.5)  # a collapses: the stability gap ...
    metrics = tracker.update({"a": 0.7, "b": 0.4}, current=0.9)  # ... and recovers
    # min-ACC: lowest of each earlier task so far, averaged: (0.2 + 0.4) / 2.
    assert metrics["min_acc"] == pytest.approx(0.3)
    # WC-ACC with k = 3 tasks: current / 3 + 2/3 * min-ACC.
    assert metrics["wc_acc"] == pytest.approx(0.9 / 3 + 2 / 3 * 0.3)
    # Largest drop inside a 2-evaluation window: a 0.8 -> 0.2, b 0.6 -> 0.4.
    assert metrics["windowed_forgetting"] == pytest.approx((0.6 + 0.2) / 2)
    # Against the first evaluation: a 0.8 -> 0.7, b 0.6 -> 0.4.
    assert metrics["forgetting"] == pytest.approx((0.1 + 0.2) / 2)


def test_windowed_forgetting_ignores_drops_longer_than_the_window() -> None:
    tracker = StabilityTracker(window=2)
    for accuracy in (0.9, 0.7, 0.5):  # 0.2 per evaluation; 0.4 only across three evaluations
        metrics = tracker.update({"a": accuracy}, current=0.0)
    assert metrics["windowed_forgetting"] == pytest.approx(0.2)


def test_a_saved_tracker_goes_on_where_it_stopped(tmp_path: Path) -> None:
    first_job = StabilityTracker(window=3)
    first_job.update({"a": 0.9}, current=0.1)
    first_job.update({"a": 0.4}, current=0.8)  # the dip while job 2 trains
    first_job.save(tmp_path / "stability.json")
    next_job = StabilityTracker.load(tmp_path / "stability.json")
    assert next_job is not None
    metrics = next_job.update({"a": 0.8, "b": 0.9}, current=0.0)  # job 3 starts; a recovered
    assert metrics["min_acc"] == pytest.approx((0.4 + 0.9) / 2)  # a's minimum from job 2 stays
    assert metrics["windowed_forgetting"] == pytest.approx((0.5 + 0.0) / 2)
    assert StabilityTracker.load(tmp_path / "none.json") is None

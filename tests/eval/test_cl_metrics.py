"""Average accuracy, backward transfer and forgetting against hand-computed matrices."""

import pytest

from eval.metrics import continual_metrics


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

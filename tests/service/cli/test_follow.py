"""`jobs follow` shows training progress and writes every other event, continual evaluations included."""

import io

import pytest
from tqdm import tqdm

from service.cli.follow import _show


def test_training_metrics_move_the_bar_and_evaluations_are_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    bar = tqdm(total=0, file=out)
    _show(
        bar,
        {
            "type": "metrics",
            "message": "Step 10/300",
            "data": {"step": 10, "total_steps": 300, "train_loss": 1.5},
        },
    )
    assert (bar.n, bar.total) == (10, 300)
    evaluation = {
        "type": "metrics",
        "message": "Step 25: earlier jobs' recall min-ACC=0.500",
        "data": {"step": 25, "min_acc": 0.5, "accuracy": {"ftjob-1": 0.5}},
    }
    _show(bar, evaluation)
    _show(bar, {"type": "message", "message": "Checkpoint saved at step 100.", "data": None})
    bar.close()
    written = capsys.readouterr().out
    assert "min-ACC=0.500" in written and "Checkpoint saved" in written
    assert bar.n == 10

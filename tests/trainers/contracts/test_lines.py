"""Protocol lines: what the trainer and evaluator write is what the worker reads back, typed."""

import json

import pytest

from trainers.contracts.lines import (
    Checkpoint,
    Completed,
    Evaluation,
    Message,
    Metrics,
    Panel,
    ProtocolError,
    Scores,
    Started,
    dump,
    parse_line,
)

LINES = [
    Started(
        total_steps=10, examples=8, resumed_from_step=0, processes=1, backend="gloo", precision="float32"
    ),
    Metrics(step=1, total_steps=10, train_loss=2.5, learning_rate=1e-3, trained_tokens=64, elapsed_s=0.5),
    Evaluation(1, {"ftjob-a": 0.5}, 0.25, 0.5, 0.4, 0.1, 0.0, method={"ratio": 0.5}, seconds=1.5),
    Checkpoint(step=5, path="checkpoints/step-000005", train_loss=2.0),
    Message("hello", level="warn"),
    Scores(version=2, job_id="ftjob-a", scores={"recall_exact": 0.5}),
    Panel(version=2, suite="perplexity", scores=[1.0, 2.0], details={"mean": 1.5}, seconds=0.2),
    Completed(steps=10, train_loss=1.0, trained_tokens=640),
    Completed(),
]


@pytest.mark.parametrize("line", LINES, ids=lambda line: line.kind)
def test_a_line_reads_back_as_written(line: object) -> None:
    written = dump(line)  # type: ignore[arg-type]
    assert json.loads(written)["type"] == line.kind  # type: ignore[attr-defined]
    assert parse_line(written.encode()) == line


def test_a_print_that_is_not_a_protocol_line_becomes_a_message() -> None:
    assert parse_line(b"Loading weights: 100%\n") == Message("Loading weights: 100%")
    assert parse_line("42") == Message("42")


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "teleport"}',
        '{"step": 1}',
        '{"type": "checkpoint", "step": 1}',
        '{"type": "message", "message": "x", "colour": 1}',
    ],
)
def test_a_malformed_protocol_line_is_an_error(raw: str) -> None:
    with pytest.raises(ProtocolError):
        parse_line(raw)

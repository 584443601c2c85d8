"""Fixtures for training-plane tests: a tiny base model, training files and trainer processes."""

import json
from pathlib import Path
from typing import Any

import pytest

from bench.jobs import TrainerRun, job_spec, run_job
from trainers.base_model.corpus import fact_set
from trainers.contracts.methods import Method

__all__ = ["REPO", "TrainerRun", "run_trainer", "write_jsonl", "write_spec"]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def facts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 prompt/completion facts as a JSONL training file."""
    return write_jsonl(tmp_path_factory.mktemp("data") / "facts.jsonl", fact_set("tests", n=16))


@pytest.fixture(scope="session")
def second_facts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 other facts, for a lineage's second job."""
    return write_jsonl(tmp_path_factory.mktemp("data2") / "facts2.jsonl", fact_set("tests-2", n=16))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSON lines and return the path."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_spec(
    output_dir: Path,
    base_model: Path,
    training_file: Path,
    *,
    parent_dir: Path | None = None,
    max_steps: int | None = 20,
    checkpoint_every: int = 10,
    method: Method | None = None,
    validation_file: Path | None = None,
) -> Path:
    """Write a job's spec.json into `output_dir` (created) as a worker would; returns its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    spec = job_spec(
        output_dir,
        base_model,
        training_file,
        steps=max_steps,
        method=method,
        parent_dir=parent_dir,
        job_id=f"ftjob-{output_dir.name}",
        lineage="bot",
        batch_size=4,
        learning_rate_multiplier=5.0,
        checkpoint_every=checkpoint_every,
        cache_dir=output_dir.parent / "cache",
        validation_file=validation_file,
    )
    return spec.write(output_dir / "spec.json")


def run_trainer(spec_path: Path) -> TrainerRun:
    """Run `python -m trainers.run --spec spec_path` to its end (a titans DPO job of 20 steps took
    366 s on CI's 2 cores shared with benchmarks: the limit only catches a hung trainer)."""
    return run_job(spec_path, timeout=900)

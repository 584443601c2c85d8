"""Fixtures for training-plane tests: a tiny base model, training files and trainer processes."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainers.base_model.corpus import fact_set
from trainers.spec import Hyperparameters, JobSpec

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
    method: dict[str, Any] | None = None,
) -> Path:
    """Write a job's spec.json into `output_dir` (created) as a worker would; returns its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(
        job_id=f"ftjob-{output_dir.name}",
        tenant="acme",
        lineage="bot",
        version=2 if parent_dir else 1,
        parent_version=1 if parent_dir else None,
        base_model=str(base_model),
        method=method or {"type": "lora", "lora": {}},
        training_file=training_file,
        training_file_sha256=f"sha-of-{training_file.name}",
        parent_dir=parent_dir,
        output_dir=output_dir,
        hyperparameters=Hyperparameters(
            n_epochs=1,
            batch_size=4,
            learning_rate_multiplier=5.0,
            max_steps=max_steps,
        ),
        seed=0,
        checkpoint_every=checkpoint_every,
        cache_dir=output_dir.parent / "cache",
    )
    return spec.write(output_dir / "spec.json")


@dataclass
class TrainerRun:
    """What a trainer process left: exit status, protocol lines, stderr."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The protocol lines of one type, in order."""
        return [line for line in self.lines if line["type"] == kind]


def run_trainer(spec_path: Path) -> TrainerRun:
    """Run `python -m trainers.run --spec spec_path` to its end."""
    process = subprocess.run(
        [sys.executable, "-m", "trainers.run", "--spec", str(spec_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    lines = [json.loads(line) for line in process.stdout.splitlines()]
    return TrainerRun(process.returncode, lines, process.stderr)

"""Jobs run as a worker runs them, outside the service: a spec.json and `python -m trainers.run`.

The benchmarks that train (and the trainer tests) build their jobs here, so a change to
`JobSpec` has one place to follow outside the worker.
"""

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from service.worker.trainer_process import launch_command
from trainers.contracts.job import ContinualEvalSpec, Hyperparameters, JobSpec
from trainers.contracts.lines import Line, parse_line
from trainers.contracts.methods import Method

__all__ = ["TrainerRun", "job_spec", "run_job"]

L = TypeVar("L", bound=Line)


def job_spec(
    output_dir: Path,
    base_model: Path,
    training_file: Path,
    *,
    steps: int | None,
    method: Method | None = None,
    parent_dir: Path | None = None,
    version: int | None = None,
    job_id: str | None = None,
    lineage: str = "bench",
    batch_size: int = 8,
    learning_rate_multiplier: float = 1.0,
    seed: int = 0,
    checkpoint_every: int | None = None,
    cache_dir: Path | None = None,
    held_out_rows: Sequence[int] = (),
    continual_eval: ContinualEvalSpec | None = None,
    precision: str = "auto",
    validation_file: Path | None = None,
) -> JobSpec:
    """A one-epoch job (or `steps` optimizer steps) writing its version into `output_dir`.

    Its version is `version`, by default 1, or 2 when it continues `parent_dir` (the version
    before it); its id is
    `ftjob-<lineage>-<output_dir's name>` unless given; tokenized data is cached beside
    `output_dir`'s parent unless `cache_dir` says where.
    """
    return JobSpec(
        job_id=job_id or f"ftjob-{lineage}-{output_dir.name}",
        tenant="bench",
        lineage=lineage,
        version=version or (2 if parent_dir else 1),
        parent_version=(version or 2) - 1 if parent_dir else None,
        base_model=str(base_model),
        method=method or Method.resolve("lora"),
        training_file=training_file.resolve(),
        training_file_sha256=_sha256(training_file),
        parent_dir=parent_dir.resolve() if parent_dir else None,
        output_dir=output_dir.resolve(),
        hyperparameters=Hyperparameters(
            n_epochs=1,
            batch_size=batch_size,
            learning_rate_multiplier=learning_rate_multiplier,
            max_steps=steps,
        ),
        seed=seed,
        checkpoint_every=checkpoint_every or steps or 1000,
        cache_dir=(cache_dir or output_dir.parent.parent / "cache").resolve(),
        held_out_rows=list(held_out_rows),
        continual_eval=continual_eval,
        precision=precision,
        validation_file=validation_file.resolve() if validation_file else None,
        validation_file_sha256=_sha256(validation_file) if validation_file else None,
    )


def _sha256(path: Path) -> str:
    """The file's hash, as the service keeps it; a missing file (the trainer reports it) hashes its name."""
    return hashlib.sha256(path.read_bytes() if path.exists() else str(path).encode()).hexdigest()


@dataclass
class TrainerRun:
    """What a trainer process left: exit status, protocol lines, stderr and wall time."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str
    seconds: float = 0.0

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The protocol lines of one type, in order, as the JSON they were written in."""
        return [line for line in self.lines if line["type"] == kind]

    def typed(self, kind: type[L]) -> list[L]:
        """The protocol lines of one type, in order, read as the worker reads them."""
        parsed = (parse_line(json.dumps(line)) for line in self.of_type(kind.kind))
        return [line for line in parsed if isinstance(line, kind)]

    def check(self) -> "TrainerRun":
        """Raise `RuntimeError` with the end of stderr unless the trainer succeeded."""
        if self.returncode != 0:
            raise RuntimeError(f"trainer failed ({self.returncode}):\n{self.stderr[-3000:]}")
        return self


def run_job(
    spec: JobSpec | Path,
    processes: int = 1,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> TrainerRun:
    """Run the trainer (`processes` ranks) on `spec` to its end, as a worker launches it.

    A `JobSpec` is first written into its output folder; a path names a spec.json already
    written. The protocol lines are also kept in `progress.jsonl` beside the spec, and what the
    trainer printed on stderr in `trainer.log`.
    """
    if isinstance(spec, JobSpec):
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        path = spec.write(spec.output_dir / "spec.json")
    else:
        path = spec
    started = time.monotonic()
    process = subprocess.run(
        launch_command("trainers.run", path, processes),
        capture_output=True,
        text=True,
        env=None if env is None else {**os.environ, **env},
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    (path.parent / "progress.jsonl").write_text(process.stdout)
    (path.parent / "trainer.log").write_text(process.stderr)
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    return TrainerRun(process.returncode, lines, process.stderr, seconds)

"""A job's metrics reach its experiment trackers: what each package is asked, with stand-ins for
the packages this environment lacks, and real TensorBoard event files where a writer is installed."""

import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench.jobs import run_job
from tests.trainers.conftest import REPO, write_spec
from trainers.contracts.integrations import Integration, missing_package
from trainers.contracts.job import JobSpec
from trainers.trackers import Trackers

CONFIG = {"lineage": "bot", "batch_size": 4}


class FakeWandb(types.ModuleType):
    """Records what `wandb.init` and its run are asked."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.calls: list[tuple[str, Any]] = []

    def init(self, **kwargs: Any) -> "FakeWandb":
        self.calls.append(("init", kwargs))
        return self

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.calls.append(("log", (metrics, step)))

    def finish(self) -> None:
        self.calls.append(("finish", None))


def test_a_wandb_run_gets_the_settings_and_every_measured_metric(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wandb = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    integration = Integration("wandb", "facts", name="run-1", entity="team", tags=["nightly"])

    trackers = Trackers([integration], "ftjob-1", CONFIG, tmp_path)
    trackers.log({"train_loss": 2.5, "valid_loss": None, "trained_tokens": 120}, step=10)
    trackers.close()

    assert wandb.calls == [
        (
            "init",
            {
                "project": "facts",
                "name": "run-1",
                "entity": "team",
                "tags": ["nightly", "ftjob-1"],
                "config": CONFIG,
                "dir": str(tmp_path / "wandb"),
            },
        ),
        ("log", ({"train_loss": 2.5, "trained_tokens": 120.0}, 10)),
        ("finish", None),
    ]


def test_an_mlflow_run_is_named_tagged_and_logged_by_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, Any]] = []
    mlflow = types.ModuleType("mlflow")
    mlflow.set_experiment = lambda name: calls.append(("experiment", name))  # type: ignore[attr-defined]
    mlflow.start_run = lambda **kwargs: calls.append(("start", kwargs))  # type: ignore[attr-defined]
    mlflow.log_params = lambda params: calls.append(("params", params))  # type: ignore[attr-defined]
    mlflow.log_metrics = lambda metrics, step: calls.append(("metrics", (metrics, step)))  # type: ignore[attr-defined]
    mlflow.end_run = lambda: calls.append(("end", None))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)

    trackers = Trackers(
        [Integration("mlflow", "facts", name="run-1", tags=["a"])], "ftjob-1", CONFIG, tmp_path
    )
    trackers.log({"train_loss": 2.5}, step=1)
    trackers.close()

    assert calls == [
        ("experiment", "facts"),
        ("start", {"run_name": "run-1", "tags": {"a": "", "job_id": "ftjob-1"}}),
        ("params", {"lineage": "bot", "batch_size": "4"}),
        ("metrics", ({"train_loss": 2.5}, 1)),
        ("end", None),
    ]


def test_tensorboard_event_files_hold_the_metrics(tmp_path: Path) -> None:
    if missing_package("tensorboard"):
        pytest.skip("neither tensorboard nor tensorboardX is installed")
    trackers = Trackers([Integration("tensorboard", "facts")], "ftjob-1", CONFIG, tmp_path)
    trackers.log({"train_loss": 2.5}, step=1)
    trackers.close()
    assert list((tmp_path / "tensorboard" / "facts" / "ftjob-1").glob("events.out.tfevents.*"))


FAKE_WANDB = """
import json, os

def init(**kwargs):
    _write({"init": {k: v for k, v in kwargs.items() if k in ("project", "name", "tags")}})
    return _Run()

class _Run:
    def log(self, metrics, step):
        _write({"log": [metrics, step]})

    def finish(self):
        _write({"finish": True})

def _write(entry):
    with open(os.environ["FAKE_WANDB_LOG"], "a") as out:
        out.write(json.dumps(entry) + "\\n")
"""


@pytest.mark.slow
def test_the_trainer_logs_each_metrics_line_to_the_jobs_integration(
    tmp_path: Path, tiny_base: Path, facts_file: Path
) -> None:
    """A trainer process whose job names a wandb integration (a stand-in package on its path)."""
    (tmp_path / "fake" / "wandb").mkdir(parents=True)
    (tmp_path / "fake" / "wandb" / "__init__.py").write_text(FAKE_WANDB)
    spec_path = write_spec(tmp_path / "v1.partial", tiny_base, facts_file, max_steps=2)
    spec = JobSpec.load(spec_path)
    spec = dataclasses.replace(spec, integrations=[Integration("wandb", "facts", name="run-1")])
    log = tmp_path / "wandb.jsonl"

    run = run_job(
        spec.write(spec_path),
        env={"PYTHONPATH": f"{tmp_path / 'fake'}:{REPO}", "FAKE_WANDB_LOG": str(log)},
        timeout=300,
    )

    assert run.returncode == 0, run.stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[0] == {"init": {"project": "facts", "name": "run-1", "tags": [spec.job_id]}}
    logged = [entry["log"] for entry in entries[1:-1]]
    metrics = run.of_type("metrics")
    assert [step for _, step in logged] == [m["step"] for m in metrics] == [1, 2]
    assert [values["train_loss"] for values, _ in logged] == pytest.approx([m["train_loss"] for m in metrics])
    assert "valid_loss" not in logged[0][0]  # not measured: no validation file
    assert entries[-1] == {"finish": True}

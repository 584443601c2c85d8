"""A job's metrics reach its experiment trackers, each through the real package writing offline and
read back with that package's own reader: W&B's offline run file, an MLflow store in a folder,
TensorBoard's event files (torch's writer and tensorboardX's); a trainer process logs every
metrics line to its job's integration."""

import dataclasses
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb.proto import wandb_internal_pb2

from bench.jobs import run_job
from tests.trainers.conftest import write_spec
from trainers.contracts.integrations import Integration
from trainers.contracts.job import JobSpec
from trainers.trackers import Trackers

CONFIG = {"lineage": "bot", "batch_size": 4}
MEASURED: list[tuple[int, dict[str, float | int | None]]] = [  # valid_loss not measured at step 10
    (10, {"train_loss": 2.5, "valid_loss": None, "trained_tokens": 120}),
    (20, {"train_loss": 2.0, "valid_loss": 2.25, "trained_tokens": 240}),
]


def _log_and_close(
    integration: Integration,
    folder: Path,
    measured: list[tuple[int, dict[str, float | int | None]]] = MEASURED,
) -> None:
    trackers = Trackers([integration], "ftjob-1", CONFIG, folder)
    for step, metrics in measured:
        trackers.log(metrics, step)
    trackers.close()


@pytest.fixture
def offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """W&B in offline mode with every folder it writes in `tmp_path` and no key: nothing leaves."""
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb-dir"), "WANDB_SILENT": "true"}
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[name] = str(tmp_path / "wandb-home" / name.lower())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return env


def test_a_wandb_run_records_the_settings_and_every_measured_metric(
    offline_wandb: dict[str, str], tmp_path: Path
) -> None:
    integration = Integration("wandb", "facts", name="run-1", entity="team", tags=["nightly"])

    _log_and_close(integration, tmp_path / "v1")

    run = _wandb_run(tmp_path / "v1")
    assert (run["project"], run["entity"], run["name"]) == ("facts", "team", "run-1")
    assert run["tags"] == ["nightly", "ftjob-1"] and run["config"] == CONFIG
    assert run["history"] == [
        (10, {"train_loss": 2.5, "trained_tokens": 120}),
        (20, {"train_loss": 2.0, "valid_loss": 2.25, "trained_tokens": 240}),
    ]
    assert run["finished"]
    assert not (tmp_path / "wandb-dir").exists()  # the run is the version's: under its folder


def test_a_job_started_again_continues_its_wandb_run(offline_wandb: dict[str, str], tmp_path: Path) -> None:
    integration = Integration("wandb", "facts", name="run-1")

    _log_and_close(integration, tmp_path / "v1", MEASURED[:1])
    time.sleep(1.1)  # W&B names an offline run's folder by the second it starts
    _log_and_close(integration, tmp_path / "v1", MEASURED[1:])  # after a pause

    starts = [_wandb_run(path) for path in sorted((tmp_path / "v1").glob("wandb/wandb/offline-run-*"))]
    assert [run["id"] for run in starts] == ["ftjob-1", "ftjob-1"]  # one run, synced as one
    assert [step for run in starts for step, _ in run["history"]] == [10, 20]


def test_a_job_started_again_continues_its_mlflow_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "v1").mkdir()
    integration = Integration("mlflow", "facts", name="run-1")

    _log_and_close(integration, tmp_path / "v1", MEASURED[:1])
    _log_and_close(integration, tmp_path / "v1", MEASURED[1:])

    client = MlflowClient(f"sqlite:///{tmp_path / 'v1' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("facts").experiment_id])  # type: ignore[union-attr]
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(10, 2.5), (20, 2.0)]


@pytest.mark.parametrize("store", ["file", "unset"])
def test_an_mlflow_run_is_named_tagged_and_logged_by_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store: str
) -> None:
    """A `file:` folder (with MLflow 3's opt-in), or no MLFLOW_TRACKING_URI: the version's own store."""
    if store == "file":
        uri = (tmp_path / "mlruns").as_uri()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    else:
        uri = f"sqlite:///{tmp_path / 'v1' / 'mlflow.db'}"
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        monkeypatch.chdir(tmp_path)  # where MLflow's own default would have put it
    (tmp_path / "v1").mkdir()

    _log_and_close(Integration("mlflow", "facts", name="run-1", tags=["nightly"]), tmp_path / "v1")

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("facts")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run-1" and run.info.status == "FINISHED"
    assert run.data.tags["job_id"] == "ftjob-1" and run.data.tags["nightly"] == ""
    assert run.data.params == {"lineage": "bot", "batch_size": "4"}
    history = {
        name: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]
        for name in ("train_loss", "valid_loss", "trained_tokens")
    }
    assert history == {
        "train_loss": [(10, 2.5), (20, 2.0)],
        "valid_loss": [(20, 2.25)],
        "trained_tokens": [(10, 120.0), (20, 240.0)],
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == (
        ["mlruns", "v1"] if store == "file" else ["v1"]
    )


@pytest.mark.parametrize("writer", ["torch", "tensorboardX"])
def test_tensorboard_event_files_hold_every_measured_metric_by_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, writer: str
) -> None:
    if writer == "tensorboardX":  # as where torch's writer cannot be imported (no tensorboard package)
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)

    _log_and_close(Integration("tensorboard", "facts"), tmp_path)

    events = EventAccumulator(str(tmp_path / "tensorboard" / "facts" / "ftjob-1")).Reload()
    scalars = {
        name: [(event.step, event.value) for event in events.Scalars(name)]
        for name in events.Tags()["scalars"]
    }
    assert scalars == {
        "train_loss": [(10, 2.5), (20, 2.0)],
        "valid_loss": [(20, 2.25)],
        "trained_tokens": [(10, 120.0), (20, 240.0)],
    }


@pytest.mark.slow
def test_the_trainer_logs_each_metrics_line_to_the_jobs_wandb_run(
    offline_wandb: dict[str, str], tmp_path: Path, tiny_base: Path, facts_file: Path
) -> None:
    spec_path = write_spec(tmp_path / "v1.partial", tiny_base, facts_file, max_steps=2)
    spec = JobSpec.load(spec_path)
    spec = dataclasses.replace(spec, integrations=[Integration("wandb", "facts", name="run-1")])

    run = run_job(spec.write(spec_path), env=offline_wandb, timeout=300)

    assert run.returncode == 0, run.stderr
    recorded = _wandb_run(tmp_path / "v1.partial")
    assert (recorded["project"], recorded["name"], recorded["tags"]) == ("facts", "run-1", [spec.job_id])
    assert recorded["config"]["lineage"] == spec.lineage and recorded["config"]["method"] == "lora"
    metrics = run.of_type("metrics")
    assert [step for step, _ in recorded["history"]] == [m["step"] for m in metrics] == [1, 2]
    for (_, logged), line in zip(recorded["history"], metrics, strict=True):
        assert logged["train_loss"] == pytest.approx(line["train_loss"])
        assert logged["trained_tokens"] == line["trained_tokens"]
        assert "valid_loss" not in logged  # not measured: no validation file
    assert recorded["finished"]


def _wandb_run(folder: Path) -> dict[str, Any]:
    """The one offline W&B run under a version's folder (or in a run's own folder), from its run
    file: id, settings, config, history as (step, the logged values), and whether it finished."""
    [path] = [*(folder / "wandb").glob("wandb/offline-run-*/run-*.wandb"), *folder.glob("run-*.wandb")]
    run: dict[str, Any] = {"history": [], "finished": False}
    for record in _finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            started = record.run
            run.update(project=started.project, entity=started.entity, name=started.display_name)
            run["id"] = started.run_id
            run["tags"] = list(started.tags)
            run["config"] = {
                item.key: json.loads(item.value_json)
                for item in started.config.update
                if not item.key.startswith("_")
            }
        elif kind == "history":
            # an item names its key in `key` or, as a path, in `nested_key`
            values = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json)
                for item in record.history.item
            }
            step = values.pop("_step")
            run["history"].append((step, {k: v for k, v in values.items() if not k.startswith("_")}))
        elif kind == "exit":
            run["finished"] = True
    return run


def _finished_records(path: Path, timeout: float = 60) -> list[Any]:
    """The run file's records once W&B's core process has written all of it: `finish()` can return
    before (CI's loaded machine read files that did not yet hold the run record)."""
    deadline = time.monotonic() + timeout
    while True:
        records = []
        for data in _leveldb_log_records(path.read_bytes()):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]  # generated protobuf
            record.ParseFromString(data)
            records.append(record)
        kinds = {record.WhichOneof("record_type") for record in records}
        if {"run", "exit"} <= kinds or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def _leveldb_log_records(raw: bytes) -> list[bytes]:
    """The records of a W&B run file: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then
    LevelDB's log format: 32 KiB blocks of chunks, each a 7-byte header (crc32, length, type:
    1 whole record, 2 first, 3 middle, 4 last part) and its data; a block's tail shorter than a
    header is padding. (wandb 0.31 reads them in its Go core and ships no Python reader.)"""
    assert struct.unpack("<4sHB", raw[:7]) == (b":W&B", 0xBEE1, 0)
    block, records, pending, position = 32768, [], b"", 7
    while position + 7 <= len(raw):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[position : position + 7])
        if kind == 0:  # zeroed space after the last record
            break
        pending += raw[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            records.append(pending)
            pending = b""
    return records

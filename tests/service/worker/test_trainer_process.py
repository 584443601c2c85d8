"""Trainers of several processes under torchrun, through the real worker.

A job asking for two processes is published with both; a worker killed with SIGKILL takes every
rank with it (while they train, and while they start) and its job resumes on another worker with
the count it started with; ranks die with a killed launcher; cancel stops every rank; a failing
rank's own reason becomes the job's error.
"""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Checkpoint, Job, JobEvent
from service.settings import Settings
from service.worker.trainer_process import TrainerProcess, launch_command
from service.worker.worker import Worker
from tests.service.conftest import FACTS, QUICK_GATE, upload, wait_for
from tests.trainers.conftest import REPO, write_jsonl, write_spec
from trainers.base_model.corpus import fact_set
from trainers.contracts.lines import Message, Started


def test_one_process_runs_the_trainer_itself_and_several_run_under_torchrun() -> None:
    spec = Path("/data/v1.partial/spec.json")
    assert launch_command("trainers.run", spec, 1) == [
        sys.executable,
        "-m",
        "trainers.run",
        "--spec",
        str(spec),
    ]
    assert launch_command("trainers.run", spec, 4) == [
        sys.executable,
        *("-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"),
        *("-m", "trainers.run", "--spec", str(spec)),
    ]


@pytest.fixture
def database_url() -> None:
    """SQLite only: the process count has nothing to do with the database (test_many_workers.py
    runs the queue on both)."""
    return None


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"serving": False})


@pytest.fixture
def lineage(api: TestClient, tiny_base: Path) -> str:
    api.post(
        "/v1/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
    ).raise_for_status()
    return "bot"


def _submit(api: TestClient, steps: int, **fields: Any) -> str:
    body = {
        "model": "bot",
        "training_file": upload(api, FACTS)["id"],
        "hyperparameters": {"max_steps": steps, "batch_size": 2},
        **fields,
    }
    response = api.post("/v1/fine_tuning/jobs", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


@pytest.mark.slow
def test_a_job_asking_for_two_processes_is_published_by_both(
    api: TestClient, settings: Settings, database: Database, lineage: str
) -> None:
    job_id = _submit(api, steps=6, processes=2)
    assert Worker(settings, database).run_once()  # its default: one process
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert (job["status"], job["fine_tuned_model"], job["processes"]) == ("succeeded", "bot@1", 2), job
    messages = [event.message for event in _events(database, job_id)]
    assert any(m.startswith("Training started: 6 steps over 8 examples on 2 processes (") for m in messages)
    assert "New version published: bot@1." in messages
    (manifest,) = settings.artifact_dir.rglob("v1/manifest.json")
    assert json.loads(manifest.read_text())["processes"] == 2


@pytest.mark.slow
def test_a_killed_worker_takes_every_rank_along_and_the_job_resumes_with_its_count(
    api: TestClient, settings: Settings, database: Database, lineage: str
) -> None:
    job_id = _submit(api, steps=400)  # no count asked: the first worker's default decides
    doomed = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"],
        env={**os.environ, **_worker_env(settings), "NEUROPLAST_TRAINER_PROCESSES": "2"},
        stderr=subprocess.DEVNULL,
    )
    ranks = wait_for(lambda: _ranks(doomed.pid), "the doomed worker's two ranks")
    wait_for(lambda: _checkpoints(database, job_id) >= 1, "a first checkpoint")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert not _survivors(ranks, timeout=10), "ranks outlived their worker"

    survivor = Worker(settings.model_copy(update={"trainer_processes": 1}), database)
    wait_for(survivor.run_once, "the lease to expire and the job to be re-claimed")
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert (job["status"], job["processes"]) == ("succeeded", 2), job
    starts = [e for e in _events(database, job_id) if e.message.startswith("Training started")]
    assert [(e.data or {})["processes"] for e in starts] == [2, 2]
    assert (starts[1].data or {})["resumed_from_step"] >= 5


@pytest.mark.slow
def test_cancel_stops_every_rank(
    api: TestClient, settings: Settings, database: Database, lineage: str
) -> None:
    job_id = _submit(api, steps=400)
    worker = Worker(settings.model_copy(update={"trainer_processes": 2}), database)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    ranks = wait_for(lambda: _ranks(os.getpid()), "two ranks")
    wait_for(lambda: _checkpoints(database, job_id) >= 1, "a first checkpoint")
    assert api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not _survivors(ranks, timeout=5), "ranks outlived the cancel"
    assert not list(settings.artifact_dir.rglob("*.partial"))


@pytest.mark.slow
def test_a_failing_rank_gives_the_job_its_reason(
    api: TestClient, settings: Settings, database: Database, model_path: str
) -> None:
    api.post("/v1/lineages", json={"name": "broken", "base_model": model_path}).raise_for_status()
    body = {"model": "broken", "training_file": upload(api, FACTS)["id"], "processes": 2}
    job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    assert Worker(settings, database).run_once()
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["message"].startswith("training failed:"), job
    assert "ChildFailedError" in (settings.logs_dir / f"{job_id}.log").read_text()  # torchrun's report stays


@pytest.mark.slow
def test_ranks_die_with_a_worker_killed_while_they_start(tmp_path: Path, tiny_base: Path) -> None:
    # Before a rank has set its own parent-death signal, the launcher's SIGTERM is what stops it;
    # without it the ranks would wait at the rendezvous of a launcher that is gone.
    spec = _long_spec(tmp_path, tiny_base)
    worker = subprocess.Popen([sys.executable, "-c", _FOLLOW_TRAINER, str(spec)], cwd=REPO)
    ranks = wait_for(lambda: _ranks(worker.pid), "two ranks")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not _survivors(ranks, timeout=10), "ranks outlived their worker"


@pytest.mark.slow
def test_ranks_die_with_a_killed_launcher(tmp_path: Path, tiny_base: Path) -> None:
    # Nothing else would stop them: the worker, alive, still holds their stdout open.
    trainer = TrainerProcess(_long_spec(tmp_path, tiny_base), tmp_path / "trainer.log", processes=2)
    next(line for line in trainer.lines(tick=1.0) if isinstance(line, Started))
    ranks = _ranks(trainer.process.pid)
    assert ranks is not None
    trainer.process.send_signal(signal.SIGKILL)
    trainer.process.wait()
    assert not _survivors(ranks, timeout=5), "ranks outlived their launcher"


# A worker in miniature: follows a two-process trainer until it is killed.
_FOLLOW_TRAINER = """
import sys
from pathlib import Path
from service.worker.trainer_process import TrainerProcess
trainer = TrainerProcess(Path(sys.argv[1]), Path(sys.argv[1]).with_name("trainer.log"), processes=2)
for _ in trainer.lines(tick=1.0):
    pass
"""


def _long_spec(tmp_path: Path, tiny_base: Path) -> Path:
    facts = write_jsonl(tmp_path / "facts.jsonl", fact_set("tests", n=8))
    return write_spec(tmp_path / "v1.partial", tiny_base, facts, max_steps=100_000, checkpoint_every=100_000)


def _worker_env(settings: Settings) -> dict[str, str]:
    return {
        "NEUROPLAST_DATA_DIR": str(settings.data_dir),
        "NEUROPLAST_LEASE_SECONDS": str(settings.lease_seconds),
        "NEUROPLAST_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "NEUROPLAST_CHECKPOINT_EVERY": str(settings.checkpoint_every),
    }


def _ranks(pid: int) -> list[psutil.Process] | None:
    """The two trainer ranks under `pid` (torchrun's children), once both started."""
    ranks = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.cmdline()[1:4] == ["-u", "-m", "trainers.run"]:
                ranks.append(child)
        except psutil.Error:  # ended while we looked
            continue
    return ranks if len(ranks) == 2 else None


def _survivors(ranks: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The ranks still running after `timeout` seconds, killed (no test leaves a trainer behind)."""
    _, alive = psutil.wait_procs(ranks, timeout=timeout)
    for rank in alive:
        rank.kill()
    return alive


def _checkpoints(database: Database, job_id: str) -> int:
    with database.session() as session:
        return len(session.scalars(select(Checkpoint).join(Job).where(Job.id == job_id)).all())


def _events(database: Database, job_id: str) -> list[JobEvent]:
    with database.session() as session:
        return list(session.scalars(select(JobEvent).join(Job).where(Job.id == job_id).order_by(JobEvent.pk)))


@pytest.mark.parametrize("threads", [None, 3])
def test_a_trainer_gets_the_workers_thread_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int | None
) -> None:
    """NEUROPLAST_TRAINER_THREADS reaches the trainer as OMP_NUM_THREADS; unset, torch decides."""
    (tmp_path / "threads_probe.py").write_text(
        "import json, os\n"
        "print(json.dumps({'type': 'message', 'message': str(os.environ.get('OMP_NUM_THREADS'))}))\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    probe = TrainerProcess(tmp_path / "spec.json", tmp_path / "log", module="threads_probe", threads=threads)
    lines = [line for line in probe.lines(tick=5) if line is not None]

    assert lines == [Message(str(threads))]  # "None": unset

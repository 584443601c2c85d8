"""Queue benchmark: how fast idle workers claim jobs, and how soon a dead worker's job runs again.

`python -m bench.queue` (part of `python -m bench`). Writes the `queue` section of docs/benchmarks.md.

- Claim throughput: `JOBS` jobs on as many lineages are queued; `WORKERS` processes call
  `JobQueue.claim`, the claim path of a polling worker without the training, until nothing is
  left; jobs claimed per second = jobs / wall time. On a Postgres server started on loopback
  (`SELECT … FOR UPDATE SKIP LOCKED`, durable defaults: fsync on) and on SQLite (compare-and-swap)
  for comparison, and with one process for scale.
- Recovery: two `neuroplast worker` processes on Postgres; the one running a real training job is
  killed with SIGKILL while the other polls; timed from the kill to the re-claim by the survivor
  (the lease expiring is most of it) and to the trainer training again from its checkpoint. Each
  trial's survivor is the next trial's victim.
"""

import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text

from bench.report import machine, write_section
from service.db import Database
from service.local import local_service
from service.local_postgres import LocalPostgres, local_postgres
from service.models import File, Job, JobEvent, Lineage, Tenant
from service.settings import Settings
from service.worker.lease import JobQueue
from trainers.contracts.statuses import JobStatus

WORKDIR = Path(".bench")
JOBS = 1000
WORKERS = 8
RECOVERY_TRIALS = 3
# Shorter than the defaults (30 s / 5 s) so that the trials take minutes; the ratio is what matters.
LEASE_SECONDS, HEARTBEAT_SECONDS, POLL_SECONDS = 10.0, 2.0, 1.0
FACTS = "\n".join(
    json.dumps({"prompt": f"Q: Where does Velo{i} live?\nA:", "completion": f" Velo{i} lives in Trasku."})
    for i in range(8)
)


def main() -> None:
    load_before = os.getloadavg()[0]
    with local_postgres() as postgres, tempfile.TemporaryDirectory(prefix="bench-queue-") as scratch:
        claims = {
            "postgres": [_claims_per_second(postgres.create_database(f"claims{n}"), n) for n in (1, WORKERS)],
            "sqlite": [_claims_per_second(f"sqlite:///{scratch}/claims{n}.db", n) for n in (1, WORKERS)],
        }
        print(json.dumps(claims, indent=2), flush=True)
        recovery = _recovery(postgres, WORKDIR / "queue-recovery")
        version = _server_version(postgres.url("postgres"))
    results = {
        "claims": claims,
        "recovery": recovery,
        "postgres_version": version,
        "load_average": (load_before + os.getloadavg()[0]) / 2,
    }
    print(json.dumps(results, indent=2))
    write_section("queue", _section(results))


def _claims_per_second(url: str, workers: int) -> dict[str, float]:
    """`JOBS` queued jobs claimed by `workers` processes; every job exactly once."""
    database = Database(url)
    database.migrate()
    _queue_jobs(database, JOBS)
    database.dispose()
    context = multiprocessing.get_context("spawn")  # no connection pool crosses a fork
    ready = context.Barrier(workers + 1)
    results: Any = context.Queue()
    processes = [
        context.Process(target=_claim_all, args=(url, f"w{index}", ready, results))
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    ready.wait()
    started = time.monotonic()
    claimed = [results.get(timeout=600) for _ in processes]
    elapsed = max(finished for _, finished in claimed) - started
    for process in processes:
        process.join()
    ids = [job_id for job_ids, _ in claimed for job_id in job_ids]
    if len(ids) != JOBS or len(set(ids)) != JOBS:
        raise RuntimeError(f"{len(ids)} claims of {len(set(ids))} distinct jobs, expected {JOBS} once each")
    return {"workers": workers, "jobs": JOBS, "seconds": elapsed, "claims_per_second": JOBS / elapsed}


def _claim_all(url: str, owner: str, ready: Any, results: Any) -> None:
    """One idle worker's claim loop, run flat out: claim until nothing is runnable."""
    database = Database(url)
    # Nothing renews these leases: they must outlast the run, or claimed jobs come back.
    queue = JobQueue(database, Settings(database_url=url, lease_seconds=3600))
    with database.session() as session:  # connect before the clock starts
        session.scalar(select(Job.pk).limit(1))
    ready.wait()
    claimed = []
    while (lease := queue.claim(owner)) is not None:
        claimed.append(lease.id)
    results.put((claimed, time.monotonic()))
    database.dispose()


def _server_version(url: str) -> str:
    database = Database(url)
    with database.session() as session:
        version = str(session.scalar(text("SHOW server_version")))
    database.dispose()
    return version


def _queue_jobs(database: Database, count: int) -> None:
    """`count` queued jobs, each first of its own lineage, so that every one is claimable at once."""
    with database.session() as session:
        tenant = Tenant(name="bench")
        session.add(tenant)
        session.flush()
        session.add(
            File(
                id="file-bench",
                tenant_pk=tenant.pk,
                filename="f.jsonl",
                purpose="fine-tune",
                bytes=1,
                rows=1,
                sha256="0",
                path="/f",
            )
        )
        lineages = [
            Lineage(
                id=f"lin-{n}",
                tenant_pk=tenant.pk,
                name=f"l{n}",
                base_model="m",
                method_type="lora",
                method_config={},
            )
            for n in range(count)
        ]
        session.add_all(lineages)
        session.flush()
        session.add_all(
            Job(
                id=f"ftjob-{n}",
                tenant_pk=tenant.pk,
                lineage_pk=lineage.pk,
                training_file="file-bench",
                status=JobStatus.QUEUED,
                hyperparameters={},
                seed=0,
                suffix=None,
                metadata_=None,
            )
            for n, lineage in enumerate(lineages)
        )


def _recovery(postgres: LocalPostgres, workdir: Path) -> dict[str, Any]:
    """Kill the worker running a job, `RECOVERY_TRIALS` times; seconds to re-claim and to retrain."""
    from trainers.base_model.build import build_base

    base = workdir / "base-tiny"
    if not (base / "config.json").exists():
        build_base(base, preset="tiny", log=lambda line: None)
    url = postgres.create_database("recovery")
    env = {
        "NEUROPLAST_DATABASE_URL": url,
        "NEUROPLAST_LEASE_SECONDS": str(LEASE_SECONDS),
        "NEUROPLAST_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "NEUROPLAST_POLL_SECONDS": str(POLL_SECONDS),
        "NEUROPLAST_CHECKPOINT_EVERY": "10",
        "NEUROPLAST_MAX_ATTEMPTS": str(RECOVERY_TRIALS + 2),
        "NEUROPLAST_MODEL_ROOTS": json.dumps([str(workdir.resolve())]),
    }
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)  # its dev key belongs to the last run's database
    model_roots = env["NEUROPLAST_MODEL_ROOTS"]
    with local_service(
        data_dir, worker=False, serving="false", database_url=url, model_roots=model_roots
    ) as service:
        job_id = _submit(service.url, service.key, base)
        database = Database(url)
        victim = _worker(data_dir, env, "w0")
        _wait(lambda: _training_starts(database, job_id) == 1, "the first worker to train")
        reclaim, retrain = [], []
        for trial in range(1, RECOVERY_TRIALS + 1):
            survivor = _worker(data_dir, env, f"w{trial}")
            _wait(lambda: "polling" in _log(data_dir, f"w{trial}"), "the survivor to poll")  # noqa: B023
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            victim.wait()
            _wait(lambda: _owner(database, job_id) == f"w{trial}", "the re-claim", tick=0.02)  # noqa: B023
            reclaim.append(time.monotonic() - killed)
            _wait(lambda: _training_starts(database, job_id) == trial + 1, "the trainer to restart")  # noqa: B023
            retrain.append(time.monotonic() - killed)
            victim = survivor
        httpx.post(
            f"{service.url}/v1/fine_tuning/jobs/{job_id}/cancel",
            headers={"Authorization": f"Bearer {service.key}"},
        ).raise_for_status()
        victim.send_signal(signal.SIGINT)
        victim.wait(60)
        database.dispose()
    return {"reclaim_s": reclaim, "retrain_s": retrain}


def _submit(url: str, key: str, base: Path) -> str:
    api = httpx.Client(base_url=f"{url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    lineage = {
        "name": "bench",
        "base_model": str(base.resolve()),
        "evaluation": {"continual_eval_every": 0},
        "health": {"gate": False},
    }
    api.post("/lineages", json=lineage).raise_for_status()
    file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
    # Long enough never to finish during the trials; cancelled at the end.
    body = {"model": "bench", "training_file": file_id, "hyperparameters": {"max_steps": 100_000}}
    response = api.post("/fine_tuning/jobs", json=body)
    response.raise_for_status()
    return str(response.json()["id"])


def _worker(data_dir: Path, env: dict[str, str], worker_id: str) -> subprocess.Popen[bytes]:
    with (data_dir / f"worker-{worker_id}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--data-dir", str(data_dir)],
            env={**os.environ, **env, "NEUROPLAST_WORKER_ID": worker_id},
            stderr=log,
        )


def _log(data_dir: Path, worker_id: str) -> str:
    """A worker's log; it says `polling` once the worker looks for work."""
    return (data_dir / f"worker-{worker_id}.log").read_text(errors="replace")


def _owner(database: Database, job_id: str) -> str | None:
    with database.session() as session:
        return session.scalar(select(Job.owner).where(Job.id == job_id))


def _training_starts(database: Database, job_id: str) -> int:
    with database.session() as session:
        query = select(JobEvent.message).join(Job).where(Job.id == job_id)
        return sum(message.startswith("Training started") for message in session.scalars(query))


def _wait(check: Any, what: str, timeout: float = 300, tick: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(tick)
    raise TimeoutError(f"waited {timeout} s for {what}")


def _section(results: dict[str, Any]) -> str:
    claims, recovery = results["claims"], results["recovery"]
    rows = "\n".join(_claims_row(backend, run) for backend, runs in claims.items() for run in runs)
    reclaim, retrain = recovery["reclaim_s"], recovery["retrain_s"]
    return f"""## Queue: claims per second, and a dead worker's job back in work

`python -m bench.queue` on {machine()}; 1-minute load average during the run
{results["load_average"]:.1f} (the machine was shared with other work).

**Claim throughput.** {JOBS} jobs, each the first of its own lineage, are queued; N processes run
the claim path of an idle worker (`JobQueue.claim`, no training) flat out until nothing is left,
timed from a common start. Every job was claimed exactly once. Postgres {results["postgres_version"]}
started by the benchmark on loopback with its durable defaults (fsync on, so one process waits for
a WAL flush per claim, while eight share flushes); SQLite in WAL mode on the same disk (one writer
at a time).

| database | worker processes | jobs | seconds | jobs claimed per second |
|---|---|---|---|---|
{rows}

**Recovery.** Two `neuroplast worker` processes on Postgres; the one training a job (tiny model)
is killed with SIGKILL while the other polls. Lease {LEASE_SECONDS:.0f} s, heartbeat
{HEARTBEAT_SECONDS:.0f} s, poll {POLL_SECONDS:.0f} s; {len(reclaim)} kills, each survivor the next victim.

| from the SIGKILL to | median s | max s | target |
|---|---|---|---|
| the job re-claimed by the other worker | {_spread(reclaim)} | under {2 * LEASE_SECONDS:.0f} s (2 leases) |
| its trainer training again from the checkpoint | {_spread(retrain)} | |

The re-claim waits for the lease to run out, between `lease - heartbeat` and `lease` after the
kill (the dead worker renewed at most one heartbeat before), plus up to one poll interval. The
rest is the new trainer process starting (Python, torch, DeepSpeed) and loading the checkpoint.
"""


def _claims_row(backend: str, run: dict[str, float]) -> str:
    seconds, rate = run["seconds"], run["claims_per_second"]
    return f"| {backend} | {run['workers']} | {run['jobs']} | {seconds:.2f} | {rate:.0f} |"


def _spread(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.1f} | {max(seconds):.1f}"


if __name__ == "__main__":
    main()

"""A 200-step `lora` job through the service (submit to `succeeded`) against a bare peft script."""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from service.client import Client
from service.local import local_service, small_base
from trainers.base_model.corpus import fact_set
from trainers.contracts.statuses import JobStatus

STEPS, BATCH_SIZE, RUNS = 200, 8, 3


def measure(workdir: Path) -> dict[str, float]:
    """Median seconds of RUNS service jobs and RUNS bare scripts, and their ratio."""
    base = small_base(workdir / "base-small")
    data = workdir / "facts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in fact_set("benchmark", n=24, seed=0)))
    service_s = statistics.median(_service_job_seconds(workdir, base, data, run) for run in range(RUNS))
    bare_s = statistics.median(_bare_script_seconds(base, data) for _ in range(RUNS))
    return {"service_s": service_s, "bare_s": bare_s, "ratio": service_s / bare_s}


def _service_job_seconds(workdir: Path, base: Path, data: Path, run: int) -> float:
    with local_service(workdir / f"service-{run}", serving="false") as service:  # training only
        client = Client(service.url, service.key)
        client.create_lineage("bench", str(base), {"type": "lora", "lora": {}})
        file_id = client.upload_file(data)["id"]
        started = time.perf_counter()
        job = client.create_job(
            "bench", file_id, hyperparameters={"max_steps": STEPS, "batch_size": BATCH_SIZE}
        )
        while (job := client.get_job(job["id"]))["status"] not in JobStatus.terminal():
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    if job["status"] != JobStatus.SUCCEEDED:
        raise RuntimeError(f"benchmark job ended {job['status']}: {job['error']}")
    return elapsed


def _bare_script_seconds(base: Path, data: Path) -> float:
    command = [sys.executable, "-m", "bench.bare_peft", "--base", str(base), "--data", str(data)]
    started = time.perf_counter()
    command += ["--steps", str(STEPS), "--batch-size", str(BATCH_SIZE), "--precision", "auto"]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"bench.bare_peft failed:\n{finished.stderr[-2000:]}")
    return time.perf_counter() - started

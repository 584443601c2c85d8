"""`python -m bench` (`make bench`): run the benchmarks, print them and write docs/benchmarks.md."""

import os
import platform
from datetime import date
from pathlib import Path

from bench import control_plane, service_vs_peft

WORKDIR = Path(".bench")
REPORT = Path("docs/benchmarks.md")


def main() -> None:
    WORKDIR.mkdir(exist_ok=True)
    print("control plane: start-up and memory at rest ...", flush=True)
    plane = control_plane.measure()
    print(f"  {plane}", flush=True)
    print(f"service job vs bare peft script, {service_vs_peft.STEPS} steps ...", flush=True)
    jobs = service_vs_peft.measure(WORKDIR)
    print(f"  {jobs}", flush=True)
    REPORT.write_text(_report(plane, jobs))
    print(f"wrote {REPORT}")


def _report(plane: dict[str, float], jobs: dict[str, float]) -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, no GPU"
    steps, batch, runs = service_vs_peft.STEPS, service_vs_peft.BATCH_SIZE, service_vs_peft.RUNS
    return f"""# Benchmarks

Produced by `make bench` (`python -m bench`) on {date.today()}, {machine}. Medians of several runs.

## Service job against a bare peft script

A {steps}-step `lora` job (batch {batch}, default LoRA config, 24 fact rows) on the `small` base
model, submitted through the REST API to the embedded service and timed from submission to
`succeeded` (queue wait, trainer process start, DeepSpeed ZeRO-2 set-up, {steps // 50}
checkpoints, adapter export and publishing included), against `bench/bare_peft.py`, a plain
transformers + peft script doing the same steps on the same data, timed as a whole process.
Median of {runs} runs each.

| what | seconds |
|---|---|
| service job, submit to `succeeded` | {jobs["service_s"]:.1f} |
| bare peft script, whole process | {jobs["bare_s"]:.1f} |
| ratio (target at most 1.3) | {jobs["ratio"]:.2f} |

## Control plane

`neuroplast serve` with its embedded worker, fresh data folder, median of 3 starts.

| what | measured | target |
|---|---|---|
| start-up, process start to `/readyz` 200 | {plane["startup_s"]:.2f} s | under 2 s |
| memory at rest (RSS), 5 s after start | {plane["rss_mb"]:.0f} MB | under 150 MB |
"""


if __name__ == "__main__":
    main()

"""`python -m bench` (`make bench`): run every benchmark; each rewrites its section of docs/benchmarks.md.

The continual-learning benchmarks train real lineages and run on their own, from the repository
root, where they rewrite their sections: `python -m bench.continual --methods lora,replay,ilora --seeds 3`
(36 versions), and the `trc` section's command, which that section names (84 versions, about
20 minutes with `--parallel 2` and `OMP_NUM_THREADS=1` on 2 cores). So does the brain-rot
dose-response on SmolLM2, `python -m bench.brainrot` (15 jobs and their panels, about 40 minutes),
the continual-learning benchmark on SmolLM2, `python -m bench.cl` (about 10 minutes per lineage on
one core; its section names the variants and seeds run), and the cost of continual evaluation
there, `python -m bench.continual_eval_cost` (about 10 minutes).
"""

from pathlib import Path

from bench import (
    control_plane,
    distributed,
    health,
    queue,
    real_model,
    retention,
    service_vs_peft,
    serving,
    soak,
    titans,
    vllm_precision,
)
from bench.report import REPORT, machine, write_section

WORKDIR = Path(".bench")


def main() -> None:
    WORKDIR.mkdir(exist_ok=True)
    print("real model: SmolLM2-135M-Instruct per method, against a bare script, a typical job, its panel ...")
    real_model.main()  # writes its own section
    print("control plane: start-up and memory at rest ...", flush=True)
    plane = control_plane.measure()
    print(f"  {plane}", flush=True)
    write_section("control-plane", _control_plane_section(plane))
    print(f"service job vs bare peft script, {service_vs_peft.STEPS} steps ...", flush=True)
    jobs = service_vs_peft.measure(WORKDIR)
    print(f"  {jobs}", flush=True)
    write_section("service-vs-peft", _service_vs_peft_section(jobs))
    print("serving: hot swap, gateway throughput, memory over swaps ...", flush=True)
    serving.main()  # writes its own section
    print("vLLM on a CPU: SmolLM2 served in bfloat16 against float32 ...", flush=True)
    vllm_precision.main()  # writes its own section
    print("evaluation: recall against recognition under interference, cost of continual evaluation ...")
    retention.main()  # writes its own section
    print("health: the gate against junk training data, a full health check's time ...")
    health.main()  # writes its own section
    print("titans: needle recall beyond the attention window, update speed, memory per request ...")
    titans.main()  # writes its own section
    print("distributed: one trainer process against two, held-out loss and step time ...")
    distributed.main([])  # writes its own section
    print("queue: claims per second with 8 idle workers (Postgres, SQLite), a dead worker's job resumed ...")
    queue.main()  # writes its own section
    print("soak: two tenants beside a hostile one (NaN jobs, poisoned webhooks, oversized requests) ...")
    soak.main()  # writes its own section
    print(f"wrote {REPORT}")


def _service_vs_peft_section(jobs: dict[str, float]) -> str:
    steps, batch, runs = service_vs_peft.STEPS, service_vs_peft.BATCH_SIZE, service_vs_peft.RUNS
    return f"""## Service job against a bare peft script

`python -m bench` on {machine()}.

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
"""


def _control_plane_section(plane: dict[str, float]) -> str:
    return f"""## Control plane

`python -m bench` on {machine()}. `neuroplast serve` with its embedded worker, fresh data
folder, median of 3 starts.

| what | measured | target |
|---|---|---|
| start-up, process start to `/readyz` 200 | {plane["startup_s"]:.2f} s | under 2 s |
| memory at rest (RSS), 5 s after start | {plane["rss_mb"]:.0f} MB | under 150 MB |
"""


if __name__ == "__main__":
    main()

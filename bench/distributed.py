"""Two trainer processes (torchrun, DeepSpeed ZeRO-2, gloo) against one on the `small` base.

`python -m bench.distributed` (also part of `make bench`). Writes the `distributed` section of
docs/benchmarks.md, and `.bench/distributed/results.json`. The same `lora` job (data, seed, global
batch) is launched as the worker launches it (`service.worker.trainer_process.launch_command`) with
one and with two processes; each adapter is scored on held-out rows of the training file with the
evaluator's held-out loss. Each run's stderr is kept in `.bench/distributed/processes-<N>/trainer.log`.

On a GPU machine `bench/gpu_check.sh` runs it with `--processes 1,<GPUs> --section distributed-gpu`.
"""

import argparse
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.jobs import job_spec, run_job
from bench.report import write_section
from eval.probes import Probes
from eval.retention import score_probes
from eval.runners import InProcessRunner
from service.local import small_base
from trainers.base_model.corpus import fact_set
from trainers.contracts.lines import Completed, Metrics, Started
from trainers.servable import load_version

WORKDIR = Path(".bench") / "distributed"
STEPS, BATCH_SIZE, ROWS, HELD_OUT = 200, 8, 40, 8  # the last HELD_OUT rows are kept out of training


def main(argv: list[str] | None = None) -> None:
    """Run the job with each process count; write the section and results.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2", help="process counts to run, the first the reference")
    parser.add_argument("--section", default="distributed", help="section of docs/benchmarks.md to write")
    args = parser.parse_args(argv)
    results = measure([int(count) for count in args.processes.split(",")])
    (WORKDIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2), flush=True)
    write_section(args.section, _section(results))


def measure(process_counts: list[int]) -> dict[str, Any]:
    """Held-out loss, final training loss and seconds per step of each process count."""
    base = small_base(Path(".bench") / "base-small")
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    rows = fact_set("distributed", n=ROWS, seed=0)
    data = WORKDIR / "facts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    held_out = rows[-HELD_OUT:]
    results: dict[str, Any] = {"load_average_start": os.getloadavg()[0]}
    results["base_held_out_loss"] = _held_out_loss(base, None, held_out)
    results["runs"], results["process_counts"] = {}, process_counts
    runs = [(str(count), count, {}) for count in process_counts]
    if 1 in process_counts and not torch.cuda.is_available():
        # torchrun gives each of several processes one thread; a lone process takes them all,
        # which on a busy machine can cost more than it gains (bench/titans.py saw 10-40x).
        runs.insert(process_counts.index(1) + 1, ("1, one thread", 1, {"OMP_NUM_THREADS": "1"}))
    for label, processes, env in runs:
        output_dir = WORKDIR / f"processes-{label.replace(', ', '-').replace(' ', '-')}"
        spec = _write_spec(output_dir, base, data, held_out_rows=list(range(ROWS - HELD_OUT, ROWS)))
        run = run_job(spec, processes, env).check()
        metrics = run.typed(Metrics)
        results["runs"][label] = {
            "backend": run.typed(Started)[0].backend,
            "held_out_loss": _held_out_loss(base, output_dir, held_out),
            "train_loss": run.typed(Completed)[0].train_loss,
            # Between the metrics lines of steps 10 and STEPS: set-up and checkpoints at the ends left out.
            "step_s": (metrics[-1].elapsed_s - metrics[1].elapsed_s) / (metrics[-1].step - metrics[1].step),
            "process_s": run.seconds,
        }
    results["load_average_end"] = os.getloadavg()[0]
    results["gpu"] = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if results["gpu"] else "no GPU"
    results["machine"] = f"{os.cpu_count()} CPU cores, {device}"
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return results


def _write_spec(output_dir: Path, base: Path, data: Path, held_out_rows: list[int]) -> Path:
    output_dir.mkdir(parents=True)
    spec = job_spec(
        output_dir,
        base,
        data,
        steps=STEPS,
        lineage="distributed",
        batch_size=BATCH_SIZE,
        cache_dir=WORKDIR / "cache",
        held_out_rows=held_out_rows,
    )
    return spec.write(output_dir / "spec.json")


def _held_out_loss(base: Path, version_dir: Path | None, rows: list[dict[str, str]]) -> float:
    """Mean NLL per completion token of `rows`, as the evaluator's `held_out_loss` (None: the base)."""
    model = AutoModelForCausalLM.from_pretrained(base)
    version = load_version(model, version_dir) if version_dir else model
    tokenizer = AutoTokenizer.from_pretrained(base)
    held_out = [
        {"row": i, "context": row["prompt"], "target": row["completion"]} for i, row in enumerate(rows)
    ]
    scores = score_probes(InProcessRunner(version, tokenizer), tokenizer, Probes(0, held_out=held_out))
    return float(scores["held_out_loss"])


def _section(results: dict[str, Any]) -> str:
    runs = results["runs"]
    counts = ",".join(str(count) for count in results["process_counts"])
    reference = next(iter(runs.values()))["held_out_loss"]
    rows = "\n".join(
        f"| {count} | {run['held_out_loss']:.3f} ({_percent(run['held_out_loss'], reference)}) "
        f"| {run['train_loss']:.3f} | {run['step_s']:.3f} | {run['process_s']:.1f} |"
        for count, run in runs.items()
    )
    engine = "NCCL, one GPU per process" if results["gpu"] else "gloo on CPU"
    load = (results["load_average_start"], results["load_average_end"])
    return f"""## Trainer processes: held-out loss and step time

`python -m bench.distributed --processes {counts}` on {results["date"]}, {results["machine"]};
1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.

The same `lora` job on the `small` base ({STEPS} steps, global batch {BATCH_SIZE}, seed 0,
default LoRA config) over {ROWS - HELD_OUT} fact rows, launched as the worker launches it: one
process, or torchrun with several, each taking its share of every batch (DeepSpeed ZeRO-2,
{engine}).

Held-out loss: mean NLL per completion token on the {HELD_OUT} rows of the file kept out of
training (the evaluator's `held_out_loss`), and its difference from the first row (target:
within 5%). The held-out facts are about people the training rows never name, so training
raises their loss above the base model's (the adapter bets on the facts it learned); what
matters here is that every process count bets alike. Step time: mean over steps 10 to {STEPS},
set-up and the checkpoint left out.

| processes | held-out loss | final training loss | seconds per step | whole process, s |
|---|---|---|---|---|
| base model | {results["base_held_out_loss"]:.3f} | | | |
{rows}
{_threads_note(results)}"""


def _threads_note(results: dict[str, Any]) -> str:
    if results["gpu"]:
        return ""
    return """
Without a GPU a lone trainer process runs torch on every core, while torchrun gives each of
several processes one thread; on a busy machine the lone process's threads wait for each other,
hence the one-thread row (`OMP_NUM_THREADS=1`), which isolates what splitting the batch does.
"""


def _percent(value: float, reference: float) -> str:
    return f"{100 * (value - reference) / reference:+.1f}%"


if __name__ == "__main__":
    main()

"""The real model on this machine: SmolLM2-135M-Instruct through the training loop and the service.

    python -m bench.real_model          # about 15 minutes on 2 cores; writes its section

Each stage's figures are kept in `.bench/real-model/results.json`, so a rerun after a failure
resumes; delete the file to measure everything again.

- Per method: a trainer process (`python -m trainers.run`, the loop every job runs) for
  `STEPS` steps of batch 8 on the example facts as chat rows; its steady step time and training
  tokens/s from the protocol's metrics lines (step 1, which warms up, left out). `lora` also in
  float32, against the default precision (bfloat16 autocast where the CPU has it).
- The loop against `bench/bare_peft.py`, a bare transformers + peft script on the same model,
  data, batch and precision: training tokens/s of each (target: ratio at least 0.95).
- A typical job through the service, the demo's first (`ilora`, 24 facts, the gate on):
  submission to `succeeded`, split into training and evaluation, and the share of the taught
  facts the version recalls exactly (the evaluator's recall probes).
- The base model's health panel: each suite's score beside its chance level.
"""

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.jobs import job_spec, run_job
from bench.report import machine, write_section
from eval.panel import PANEL_SUITES
from service.client import Client
from service.demo import HYPERPARAMETERS as TYPICAL_JOB
from service.local import local_service
from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation
from trainers.contracts.lines import Metrics, Panel, Started, parse_line
from trainers.contracts.methods import Method
from trainers.contracts.statuses import JobStatus

WORKDIR = Path(".bench") / "real-model"
REPO = Path(__file__).resolve().parents[1]
FACTS = REPO / "examples" / "facts-people-1.jsonl"
MODEL = "smollm2-135m-instruct"
METHODS = ("lora", "replay", "ilora", "titans", "trc")
STEPS, BATCH_SIZE = 12, 8
REPEATS = 3  # rounds of the loop against the bare script, interleaved; each side's median run counts
# The bare script's variants: the loop's choices (first) and what they were weighed against.
CHOICES = {
    "LoRA on every linear layer, bfloat16 autocast (the loop's choice)": ("--precision", "auto"),
    "the same in float32": ("--precision", "float32"),
    "LoRA on the attention projections only": ("--precision", "auto", "--targets", "attention"),
    "with gradient checkpointing": ("--precision", "auto", "--gradient-checkpointing"),
}


def main() -> None:
    """Run every stage not yet in `WORKDIR/results.json` (a rerun after a failure resumes), then
    write the section."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    base = fetched_base()
    print(f"the loop against the bare script, {REPEATS} rounds ...", flush=True)
    rounds = _stage(
        "rounds",
        lambda: [
            (trainer_run(base, "lora", "auto"), _bare_script(base, "--precision", "auto"))
            for _ in range(REPEATS)
        ],
    )
    print("trainer processes per method ...", flush=True)
    loop = _stage(
        "loop",
        lambda: {
            "lora": _median_run([loop_run for loop_run, _ in rounds]),
            **{method: trainer_run(base, method, "auto") for method in METHODS if method != "lora"},
            "lora float32": trainer_run(base, "lora", "float32"),
        },
    )
    print("the alternatives to the loop's choices ...", flush=True)
    bare = _stage(
        "bare",
        lambda: {
            next(iter(CHOICES)): _median_run([bare_run for _, bare_run in rounds]),
            **{name: _bare_script(base, *options) for name, options in list(CHOICES.items())[1:]},
        },
    )
    print("a typical job through the service ...", flush=True)
    job = _stage("typical_job", lambda: _typical_job(base))
    print("the base model's panel ...", flush=True)
    panel = _stage("panel", lambda: _base_panel(base))
    section = _section(loop, bare, job, panel)
    print(section)
    write_section("real-model", section)


def _stage(name: str, measure: Callable[[], Any]) -> Any:
    """`measure()`, or its result from an earlier run of this benchmark."""
    path = WORKDIR / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if name not in results:
        results[name] = measure()
        path.write_text(json.dumps(results, indent=2))
    return results[name]


def fetched_base() -> Path:
    folder = WORKDIR / "base-smollm2"
    command = [sys.executable, "-m", "service.cli", "base", "fetch", MODEL, "--out", str(folder)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder.resolve()


def trainer_run(base: Path, method: str, precision: str) -> dict[str, Any]:
    """Steady step time and tokens/s of a trainer process of `method` on the example facts."""
    output = WORKDIR / "loop" / f"{method}-{precision}" / "v1"
    shutil.rmtree(output.parent, ignore_errors=True)
    output.mkdir(parents=True)
    spec = job_spec(
        output,
        base,
        FACTS,
        steps=STEPS,
        method=Method.resolve(method),
        lineage=method,
        batch_size=BATCH_SIZE,
        cache_dir=WORKDIR / "cache",
        precision=precision,
    )
    started = time.monotonic()
    run = run_job(spec).check()
    (started_line,) = run.typed(Started)
    first, last = (line for line in run.typed(Metrics) if line.step in (1, STEPS))
    seconds = last.elapsed_s - first.elapsed_s
    result = {
        "precision": started_line.precision,
        "step_s": seconds / (STEPS - 1),
        "tokens_per_s": (last.trained_tokens - first.trained_tokens) / seconds,
        "process_s": time.monotonic() - started,
    }
    print(f"  {method} ({precision}): {result}", flush=True)
    return result


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median tokens/s (2 shared cores: one run can be slowed by anything)."""
    return sorted(runs, key=lambda run: run["tokens_per_s"])[len(runs) // 2]


def _bare_script(base: Path, *options: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.bare_peft", "--base", str(base), "--data", str(FACTS)]
    command += ["--steps", str(STEPS), "--batch-size", str(BATCH_SIZE), *options]
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"bench.bare_peft failed:\n{process.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(process.stdout.splitlines()[-1])
    print(f"  bare {' '.join(options)}: {result}", flush=True)
    return result


def _typical_job(base: Path) -> dict[str, Any]:
    """The demo's first job through the service (serving off: training, evaluation and the gate)."""
    shutil.rmtree(WORKDIR / "service", ignore_errors=True)  # a fresh service, as a new user's
    with local_service(WORKDIR / "service", serving="false", checkpoint_every="1000") as service:
        client = Client(service.url, service.key)
        client.create_lineage(
            "typical", str(base), {"type": "ilora", "ilora": {}}, {"held_out_fraction": 0.0}
        )
        file_id = client.upload_file(FACTS)["id"]
        submitted = time.monotonic()
        job = client.create_job("typical", file_id, hyperparameters=TYPICAL_JOB, seed=0)
        while (job := client.get_job(job["id"]))["status"] not in JobStatus.terminal():
            time.sleep(0.5)
        wall = time.monotonic() - submitted
        if job["status"] != JobStatus.SUCCEEDED:
            raise RuntimeError(f"the typical job ended {job['status']}: {job['error']}")
        events = list(reversed(client.list_events(job["id"], limit=100)))
        retention = client.retention("typical")
        (version,) = client.list_versions("typical")
        report = client.get_report(version["report_id"])
    metrics = [event["data"] for event in events if event["type"] == "metrics"]
    training = next(event for event in events if event["message"].startswith("Training completed"))
    result = {
        "wall_s": wall,
        "training_s": metrics[-1]["elapsed_s"],
        "evaluation_s": job["finished_at"] - training["created_at"],
        "steps": metrics[-1]["step"],
        "tokens_per_s": (metrics[-1]["trained_tokens"] - metrics[0]["trained_tokens"])
        / (metrics[-1]["elapsed_s"] - metrics[0]["elapsed_s"]),
        "recall_exact": retention["matrices"]["recall_exact"][0][0],
        "verdict": report["verdict"],
        "status": version["status"],
        "suites": {suite: comparison["verdict"] for suite, comparison in report["suites"].items()},
    }
    print(f"  typical job: {result}", flush=True)
    return result


def _base_panel(base: Path) -> dict[str, dict[str, Any]]:
    """Every panel suite on the base model, through `python -m trainers.evaluate` as the gate runs it."""
    spec = EvaluatorSpec(str(base), [ModelEvaluation(0, None, {}, list(PANEL_SUITES))])
    path = spec.write(WORKDIR / "panel-spec.json")
    process = subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", "--spec", str(path)], capture_output=True, text=True
    )
    if process.returncode != 0:
        raise RuntimeError(f"trainers.evaluate failed:\n{process.stderr[-3000:]}")
    panel = {}
    for line in map(parse_line, process.stdout.splitlines()):
        if isinstance(line, Panel):
            panel[line.suite] = {
                "score": statistics.fmean(line.scores),
                "items": len(line.scores),
                "details": line.details,
                "seconds": line.seconds,
            }
    print(f"  panel: { {suite: round(p['score'], 3) for suite, p in panel.items()} }", flush=True)
    return panel


def _chance(details: dict[str, Any]) -> str:
    """The suite's own chance level; a run saved before suites reported one has none."""
    return f"{details['chance']:.3f}" if "chance" in details else "-"


def _section(
    loop: dict[str, dict[str, Any]],
    bare: dict[str, dict[str, Any]],
    job: dict[str, Any],
    panel: dict[str, dict[str, Any]],
) -> str:
    methods = "\n".join(
        f"| `{name.split()[0]}` | {run['precision']} | {run['step_s']:.2f} | {run['tokens_per_s']:.0f} |"
        for name, run in loop.items()
    )
    lora, chosen = loop["lora"], next(iter(bare.values()))
    choices = "\n".join(
        f"| {name} | {run['step_s']:.2f} | {run['tokens_per_s']:.0f} | {run['final_loss']:.3f} |"
        for name, run in bare.items()
    )
    reasoning = panel["reasoning"]["details"]
    panel_rows = "\n".join(
        f"| `{suite}` | {run['items']} | {run['score']:.3f} | {_chance(run['details'])} "
        f"| {run['seconds']:.0f} |"
        for suite, run in panel.items()
    )
    suites = ", ".join(f"{suite} {verdict}" for suite, verdict in job["suites"].items())
    return f"""## Real model: SmolLM2-135M-Instruct

`python -m bench.real_model` on {machine()}. The base is fetched with
`neuroplast base fetch smollm2-135m-instruct` (135M parameters, 30 layers, 9 query / 3 key-value
heads); every run below trains on `examples/facts-people-1.jsonl` (24 facts as chat rows, rendered
with the model's chat template, about 60 tokens a row).

**Step time per method**: a trainer process, {STEPS} steps of batch {BATCH_SIZE}, method defaults;
step 1 (warm-up) left out. Training tokens count every token of the batch's rows, replayed rows
included.

| method | precision | seconds per step | training tokens/s |
|---|---|---|---|
{methods}

**The service's loop against a bare script**: `bench/bare_peft.py` does the same LoRA steps with
transformers + peft alone (same data, batch, precision and optimizer), no DeepSpeed, no
checkpoints, no protocol. {REPEATS} rounds, loop then script; the median run of each.

| what | training tokens/s |
|---|---|
| service training loop (`lora`, {lora["precision"]}) | {lora["tokens_per_s"]:.0f} |
| bare transformers + peft script ({chosen["precision"]}) | {chosen["tokens_per_s"]:.0f} |
| ratio (target at least 0.95) | {lora["tokens_per_s"] / chosen["tokens_per_s"]:.2f} |

**What the loop's choices were weighed against**: the bare script, {STEPS} steps of batch
{BATCH_SIZE}, one variant each (final loss after {STEPS} steps at learning rate 2e-3). The rows are
all about as long (one question and one sentence), so neither packing nor length-grouped batches
would remove padding worth measuring; the trainer uses every core (`NEUROPLAST_TRAINER_THREADS`
unset).

| variant | seconds per step | training tokens/s | final loss |
|---|---|---|---|
{choices}

**A typical job**: the demo's first job on an `ilora` lineage: 24 facts, {TYPICAL_JOB["n_epochs"]}
epochs of batch {TYPICAL_JOB["batch_size"]} ({job["steps"]} steps), learning-rate multiplier
{TYPICAL_JOB["learning_rate_multiplier"]}, submitted over REST to the embedded service with serving
off.

| what | measured |
|---|---|
| submission to `succeeded` | {job["wall_s"]:.0f} s |
| training (trainer process start to last step) | {job["training_s"]:.0f} s |
| evaluation and gate, after training | {job["evaluation_s"]:.0f} s |
| training tokens/s in the job | {job["tokens_per_s"]:.0f} |
| taught facts recalled exactly by the new version | {100 * job["recall_exact"]:.0f}% |
| health verdict / version status | {job["verdict"]} / {job["status"]} ({suites}) |

**The base model's health panel**: `python -m trainers.evaluate` on the base, every suite, as the gate
runs them. Reasoning: multiple choice by likelihood {reasoning["multiple_choice_accuracy"]:.2f}, with
chain of thought {reasoning["chain_of_thought_accuracy"]:.2f} (reported; the score is the first). Each suite's
chance level is what it reports itself (`eval/panel/`).

| suite | items | base score | chance | seconds |
|---|---|---|---|---|
{panel_rows}
"""


if __name__ == "__main__":
    main()

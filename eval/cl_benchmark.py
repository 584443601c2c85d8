"""Continual-learning benchmark: a stream of generated tasks taught one job at a time, per method.

`neuroplast bench cl --methods lora,replay,ilora --seeds 3`. For each method and seed, a
lineage learns the default stream (`default_stream`: three fact sets about new people, one per
domain, then a skill task) one version per task, each version trained by the trainer process
jobs use (`python -m trainers.run`, its parent the previous version). After each task the
published adapter is scored on every task so far (`eval.recall`), giving R[i][j]; the metrics
of `eval.metrics` summarise it. `step_time_ratio` measures the cost of `ilora` over `lora`.
"""

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.metrics import ContinualMetrics, continual_metrics
from eval.recall import recall
from trainers.base_model.corpus import MONTHS, fact_set

__all__ = ["BATCH_SIZE", "STEPS", "Task", "default_stream", "run_benchmark", "step_time_ratio"]

STEPS = 100  # per task; with LEARNING_RATE_MULTIPLIER it teaches most of 24 facts to the small base
BATCH_SIZE = 8
LEARNING_RATE_MULTIPLIER = 2.0
DOMAINS = ("harbour-town", "mountain-village", "river-city")


@dataclass(frozen=True)
class Task:
    """One task of the stream: its training rows are also what it is scored on.

    Attributes:
        name: Short name for tables.
        rows: `{"prompt", "completion"}` rows.
    """

    name: str
    rows: list[dict[str, str]]


@dataclass
class MethodResult:
    """One method's runs over seeds.

    Attributes:
        matrices: Per seed, R[i][j] (recall of task j after task i; None for j > i).
        metrics: Per seed, the metrics of its matrix.
    """

    matrices: list[list[list[float | None]]] = field(default_factory=list)
    metrics: list[ContinualMetrics] = field(default_factory=list)


def default_stream(seed: int = 0) -> list[Task]:
    """Three fact sets (new people, one per domain) then the month-order skill: four tasks."""
    tasks = [Task(domain, fact_set(f"cl-{domain}", n=24, seed=seed)) for domain in DOMAINS]
    return [*tasks, Task("month-order", month_order_rows())]


def month_order_rows() -> list[dict[str, str]]:
    """The skill task: which month comes after and before each month (24 rows)."""
    rows = []
    for i, month in enumerate(MONTHS):
        after, before = MONTHS[(i + 1) % 12], MONTHS[i - 1]
        rows.append({"prompt": f"Q: Which month comes after {month}?\nA:", "completion": f" {after}."})
        rows.append({"prompt": f"Q: Which month comes before {month}?\nA:", "completion": f" {before}."})
    return rows


def run_benchmark(
    methods: list[str],
    seeds: int,
    base_model: Path,
    workdir: Path,
    steps: int = STEPS,
    log: Callable[[str], None] = print,
) -> dict[str, MethodResult]:
    """Teach the default stream to one lineage per method and seed; score after every task.

    Args:
        methods: Registered method names, e.g. `["lora", "replay", "ilora"]`.
        seeds: Seeds 0..seeds-1 (training seed of every job; the stream is fixed).
        base_model: Folder of the base model (e.g. the `small` preset).
        workdir: Where lineages, training files and the tokenized-data cache go.
        steps: Optimizer steps per task.
        log: Progress lines.

    Returns:
        Per method, its matrices and metrics per seed.
    """
    tasks = default_stream()
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    results = {method: MethodResult() for method in methods}
    for seed in range(seeds):  # seed-major: an interrupted run has every method's first seeds
        for method in methods:
            started = time.monotonic()
            matrix = _run_lineage(method, seed, tasks, base_model, workdir, steps, tokenizer)
            results[method].matrices.append(matrix)
            results[method].metrics.append(continual_metrics(matrix))
            final = [f"{score:.2f}" for score in matrix[-1]]
            log(f"{method} seed {seed}: final row {final} ({time.monotonic() - started:.0f} s)")
            matrices = {name: result.matrices for name, result in results.items()}
            (workdir / "matrices.json").write_text(json.dumps(matrices, indent=1))
    return results


def step_time_ratio(base_model: Path, steps: int = 30) -> dict[str, float]:
    """Median training-step time of `ilora` over `lora` on the same batch (replayed rows included).

    Both run forward (with hidden states), loss, backward, AdamW step and the after-step hook
    on 8 new rows plus 4 replayed rows of an earlier job, alternating, in this process.

    Returns:
        `lora_ms`, `ilora_ms` and their `ratio`.
    """
    from trainers.data import Collator, render_row
    from trainers.registry import load_method, method_config

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    stream = default_stream()
    old = [render_row(row, tokenizer, 256) for row in stream[0].rows]
    new = [render_row(row, tokenizer, 256) for row in stream[1].rows]
    runners = {}
    for name in ("lora", "ilora"):
        method = load_method(name)(method_config(name, {}))
        model = method.prepare_model(AutoModelForCausalLM.from_pretrained(base_model), None)
        method.start_job("job-1", old, seed=0)
        method.start_job("job-2", new, seed=0)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        runners[name] = (method, model, optimizer)
    ilora = runners["ilora"][0]
    batch = Collator(tokenizer.pad_token_id)(new[:BATCH_SIZE] + ilora.replay_rows(0, BATCH_SIZE))
    times: dict[str, list[float]] = {name: [] for name in runners}
    for step in range(steps + 3):
        for name, (method, model, optimizer) in runners.items():
            started = time.perf_counter()
            outputs = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                labels=batch["labels"],
                output_hidden_states=True,
            )
            method.training_loss(model, batch, outputs).backward()
            optimizer.step()
            optimizer.zero_grad()
            method.after_optimizer_step(model, step + 1)
            if step >= 3:  # warm-up steps left out
                times[name].append(time.perf_counter() - started)
    lora_ms, ilora_ms = (1000 * statistics.median(times[name]) for name in ("lora", "ilora"))
    return {"lora_ms": lora_ms, "ilora_ms": ilora_ms, "ratio": ilora_ms / lora_ms}


def summary(results: dict[str, MethodResult]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per method and metric, (mean, standard deviation) over seeds, in percentage points."""
    table = {}
    for method, result in results.items():
        table[method] = {
            name: _mean_sd([100 * getattr(m, name) for m in result.metrics])
            for name in ("average_accuracy", "backward_transfer", "forgetting", "final_task")
        }
    return table


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _run_lineage(
    method: str,
    seed: int,
    tasks: list[Task],
    base_model: Path,
    workdir: Path,
    steps: int,
    tokenizer: Any,
) -> list[list[float | None]]:
    """Train one lineage through `tasks` and return its score matrix."""
    lineage_dir = workdir / f"{method}-seed{seed}"
    matrix: list[list[float | None]] = []
    parent: Path | None = None
    for i, task in enumerate(tasks):
        training_file = workdir / "data" / f"{task.name}.jsonl"
        training_file.parent.mkdir(parents=True, exist_ok=True)
        training_file.write_text("".join(json.dumps(row) + "\n" for row in task.rows))
        output_dir = lineage_dir / f"v{i + 1}"
        _train(method, seed, i, training_file, base_model, parent, output_dir, workdir / "cache", steps)
        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_model), output_dir / "adapter"
        ).eval()
        matrix.append(
            [recall(model, tokenizer, tasks[j].rows) if j <= i else None for j in range(len(tasks))]
        )
        parent = output_dir
    return matrix


def _train(
    method: str,
    seed: int,
    index: int,
    training_file: Path,
    base_model: Path,
    parent: Path | None,
    output_dir: Path,
    cache_dir: Path,
    steps: int,
) -> None:
    """One job, exactly as a worker runs it: a spec file and `python -m trainers.run`."""
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    spec = {
        "job_id": f"ftjob-bench-{method}-{seed}-{index}",
        "tenant": "bench",
        "lineage": f"{method}-seed{seed}",
        "version": index + 1,
        "parent_version": index if parent else None,
        "base_model": str(base_model),
        "method": {"type": method, method: {}},
        "training_file": str(training_file),
        "training_file_sha256": f"{training_file.stem}-{training_file.stat().st_size}",
        "parent_dir": str(parent) if parent else None,
        "output_dir": str(output_dir),
        "hyperparameters": {
            "n_epochs": 1,
            "batch_size": BATCH_SIZE,
            "learning_rate_multiplier": LEARNING_RATE_MULTIPLIER,
            "max_steps": steps,
        },
        "seed": seed,
        "checkpoint_every": steps,
        "cache_dir": str(cache_dir),
    }
    (output_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    process = subprocess.run(
        [sys.executable, "-m", "trainers.run", "--spec", str(output_dir / "spec.json")],
        capture_output=True,
        text=True,
    )
    if process.returncode != 0:
        raise RuntimeError(f"{spec['job_id']} failed: {process.stderr.strip().splitlines()[-1:]}")

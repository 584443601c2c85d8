"""Continual-learning benchmark: a stream of generated tasks taught one job at a time, per method.

`python -m bench.continual --methods lora,replay,ilora --seeds 3`. For each method and seed, a
lineage learns the default stream (`default_stream`: three fact sets about new people, one per
domain, then a skill task) one version per task, each version trained by the trainer process
jobs use (`python -m trainers.run`, its parent the previous version). After each task the
published version (as `trainers.servable.load_version` loads it) is scored on every task so far
(`eval.recall`), giving R[i][j]; the metrics of `eval.metrics` summarise it. Jobs after the first
also evaluate earlier tasks' probes every `CONTINUAL_EVAL_EVERY` steps, as the service's jobs do,
which is the forgetting signal of `trc`'s controller. `VARIANTS` names method configs other than
the defaults (the `trc` ablations). `step_times` measures the cost of a step against `lora`'s.
"""

import json
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.jobs import job_spec, run_job
from eval.metrics import ContinualMetrics, area_under_forgetting_curve, continual_metrics
from eval.probes import ProbeSizes, build_probes
from eval.recall import recall
from trainers.base_model.corpus import MONTHS, fact_set
from trainers.contracts.job import ContinualEvalSpec
from trainers.contracts.methods import Method
from trainers.servable import load_version

__all__ = ["BATCH_SIZE", "STEPS", "VARIANTS", "Task", "default_stream", "run_benchmark", "step_times"]

STEPS = 100  # per task; with LEARNING_RATE_MULTIPLIER it teaches most of 24 facts to the small base
BATCH_SIZE = 8
LEARNING_RATE_MULTIPLIER = 2.0
DOMAINS = ("harbour-town", "mountain-village", "river-city")
CONTINUAL_EVAL_EVERY = 10  # steps between evaluations of earlier tasks' probes during a job
# Benchmark names for method configs other than the defaults: (method, config).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "trc-no-router": ("trc", {"router": False}),
    "trc-no-hippocampus": ("trc", {"hippocampus": False}),
    "trc-no-controller": ("trc", {"controller": False}),
}


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
    parallel: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, MethodResult]:
    """Teach the default stream to one lineage per method and seed; score after every task.

    Args:
        methods: Registered method names or `VARIANTS`, e.g. `["lora", "replay", "ilora"]`.
        seeds: Seeds 0..seeds-1 (training seed of every job; the stream is fixed).
        base_model: Folder of the base model (e.g. the `small` preset).
        workdir: Where lineages, training files and the tokenized-data cache go. Lineages
            that an earlier run here finished (its `matrices.json`) are kept, not trained again.
        steps: Optimizer steps per task.
        parallel: Lineages trained at once (each its own trainer processes; scoring in threads).
        log: Progress lines.

    Returns:
        Per method, its matrices and metrics per seed.
    """
    tasks = default_stream()
    files = _write_task_files(tasks, workdir)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    done: dict[tuple[str, int], list[list[float | None]]] = {
        (method, seed): matrix
        for method, matrices in _finished_matrices(workdir / "matrices.json").items()
        for seed, matrix in enumerate(matrices)
    }
    # Seed-major: an interrupted run has every method's first seeds.
    pending = [(method, seed) for seed in range(seeds) for method in methods if (method, seed) not in done]
    for method, seed in sorted(done):
        if method in methods and seed < seeds:
            log(f"{method} seed {seed}: kept from an earlier run in {workdir}")
    lock = threading.Lock()

    def run(method: str, seed: int) -> None:
        started = time.monotonic()
        matrix = _run_lineage(method, seed, tasks, files, base_model, workdir, steps, tokenizer)
        final = [f"{score:.2f}" for score in matrix[-1]]
        log(f"{method} seed {seed}: final row {final} ({time.monotonic() - started:.0f} s)")
        with lock:
            done[method, seed] = matrix
            _write_matrices(done, workdir / "matrices.json")

    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(run, method, seed) for method, seed in pending]:
            future.result()
    results = {}
    for method in methods:
        matrices = [done[method, seed] for seed in range(seeds)]
        results[method] = MethodResult(matrices, [continual_metrics(m) for m in matrices])
    return results


def _finished_matrices(path: Path) -> dict[str, list[list[list[float | None]]]]:
    """The lineages an earlier, interrupted run in the same workdir finished, per method and seed."""
    return json.loads(path.read_text()) if path.exists() else {}


def _write_matrices(done: dict[tuple[str, int], list[list[float | None]]], path: Path) -> None:
    """Per method, the matrices of its seeds 0, 1, ... as far as they run without a gap."""
    matrices: dict[str, list[list[list[float | None]]]] = {}
    for method in dict.fromkeys(method for method, _ in done):
        seed = 0
        while (method, seed) in done:
            matrices.setdefault(method, []).append(done[method, seed])
            seed += 1
    path.write_text(json.dumps(matrices, indent=1))


def _write_task_files(tasks: list[Task], workdir: Path) -> list[tuple[Path, Path]]:
    """Each task's training file and probes under `workdir`, written once before any lineage runs."""
    files = []
    for task in tasks:
        training_file = workdir / "data" / f"{task.name}.jsonl"
        training_file.parent.mkdir(parents=True, exist_ok=True)
        training_file.write_text("".join(json.dumps(row) + "\n" for row in task.rows))
        probes_file = workdir / "probes" / f"{task.name}.json"
        probes_file.parent.mkdir(parents=True, exist_ok=True)
        # No held-out split: every row is trained on, as before continual evaluation existed.
        task_probes = build_probes(task.rows, seed=0, sizes=ProbeSizes(held_out_fraction=0.0))
        probes_file.write_text(json.dumps(task_probes.to_json()))
        files.append((training_file, probes_file))
    return files


def step_times(
    base_model: Path, methods: tuple[str, ...] = ("lora", "ilora", "trc"), steps: int = 30
) -> dict[str, float]:
    """Median training-step time of each method on the same batch (replayed rows included), in ms.

    Each runs forward (with hidden states), loss, backward, AdamW step and the after-step hook
    on 8 new rows plus 4 rows of an earlier job, alternating, in this process. The earlier rows
    come from `ilora`'s buffer for every method (so `trc`'s replay and distillation paths run).

    Returns:
        Per method, milliseconds.
    """
    from trainers.contracts.methods import load_method
    from trainers.data import Collator, render_row

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    stream = default_stream()
    old = [render_row(row, tokenizer, 256) for row in stream[0].rows]
    new = [render_row(row, tokenizer, 256) for row in stream[1].rows]
    runners = {}
    for name in methods:
        method = load_method(name)(Method.resolve(name).config)
        model = method.prepare_model(AutoModelForCausalLM.from_pretrained(base_model), None)
        method.start_job("job-1", old, seed=0)
        method.start_job("job-2", new, seed=0)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        runners[name] = (method, model, optimizer)
    replayed = [dict(row, replayed=True) for row in old[: BATCH_SIZE // 2]]
    batch = Collator(tokenizer.pad_token_id)(new[:BATCH_SIZE] + replayed)
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
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def summary(results: dict[str, MethodResult]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per method and metric, (mean, standard deviation) over seeds, in percentage points."""
    table = {}
    for method, result in results.items():
        table[method] = {
            name: _mean_sd([100 * getattr(m, name) for m in result.metrics])
            for name in ("average_accuracy", "backward_transfer", "forgetting", "final_task")
        }
        table[method]["aufc"] = _mean_sd([100 * area_under_forgetting_curve(m) for m in result.matrices])
    return table


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# Lineages score in threads, and transformers' model loading is not thread-safe: two at once fail
# with "Cannot copy out of meta tensor".
_LOADING = threading.Lock()


def _run_lineage(
    method: str,
    seed: int,
    tasks: list[Task],
    files: list[tuple[Path, Path]],
    base_model: Path,
    workdir: Path,
    steps: int,
    tokenizer: Any,
) -> list[list[float | None]]:
    """Train one lineage through `tasks` (training and probe files in `files`); return its score matrix."""
    lineage_dir = workdir / f"{method}-seed{seed}"
    matrix: list[list[float | None]] = []
    parent: Path | None = None
    probes: dict[str, str] = {}  # job id -> probes.json of the tasks so far
    for i, (task, (training_file, probes_file)) in enumerate(zip(tasks, files, strict=True)):
        continual_eval = ContinualEvalSpec(
            every=CONTINUAL_EVAL_EVERY, items=len(task.rows), earlier=dict(probes), current=str(probes_file)
        )
        output_dir = lineage_dir / f"v{i + 1}"
        job_id = _train(
            method,
            seed,
            i,
            training_file,
            base_model,
            parent,
            output_dir,
            workdir / "cache",
            steps,
            continual_eval,
        )
        probes[job_id] = str(probes_file)
        with _LOADING:
            model = load_version(AutoModelForCausalLM.from_pretrained(base_model), output_dir)
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
    continual_eval: ContinualEvalSpec,
) -> str:
    """One job, exactly as a worker runs it: a spec file and `python -m trainers.run`; returns its id.

    The trainer's protocol lines are kept in `output_dir/progress.jsonl`.
    """
    shutil.rmtree(output_dir, ignore_errors=True)
    output_dir.mkdir(parents=True)
    method_type, config = VARIANTS.get(method, (method, {}))
    spec = job_spec(
        output_dir,
        base_model,
        training_file,
        steps=steps,
        method=Method.resolve(method_type, config),
        parent_dir=parent,
        version=index + 1,
        job_id=f"ftjob-bench-{method}-{seed}-{index}",
        lineage=f"{method}-seed{seed}",
        batch_size=BATCH_SIZE,
        learning_rate_multiplier=LEARNING_RATE_MULTIPLIER,
        seed=seed,
        cache_dir=cache_dir,
        continual_eval=continual_eval if continual_eval.earlier else None,
    )
    run = run_job(spec)
    if run.returncode != 0:
        raise RuntimeError(f"{spec.job_id} failed: {run.stderr.strip().splitlines()[-1:]}")
    return spec.job_id

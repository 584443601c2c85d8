"""One lineage of the continual-learning benchmark: a family's tasks taught in order, scored after each.

For a (family, variant, seed), `run_lineage` draws the family's tasks with the seed, puts them in
the seed's order (`streams.task_orders`, cycling), and trains one version per task with the
trainer process the service's jobs use (`python -m trainers.run`), each from the one before. While
a job trains, its continual evaluation reads the *validation* probes of every task so far (after
each of the first `DENSE_STEPS` steps, then every `EVAL_EVERY`): that is the stability-gap curve,
and what `trc`'s controller reacts to. After each job the version is scored on the *test* probes
of all three tasks (R[i][j], so forward transfer is there too); the last version and the base
also run the health panel's suites when asked (the stream's cost to what the model could do).
The `multitask` variant is the upper bound: one `lora` job from the base on all tasks' rows
together, as many steps as the stream's jobs together, scored once.

A lineage's outcome is one record, `<family>/<variant>-seed<seed>.json` in a records folder (the
benchmark keeps them in the repository, `bench/cl/results/`, so that a machine lost in the middle
of a run loses only the lineages in flight); a run finds the lineages an earlier one finished and
does not train them again.
"""

import json
import os
import random
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from bench.cl.streams import Task, family, task_orders
from bench.cl.variants import VARIANTS, Variant
from bench.jobs import TrainerRun, job_spec, run_job
from bench.report import cpu
from eval.continual import recall_inputs
from eval.panel import run_suite
from eval.probes import Probes
from eval.recall import greedy_matches
from eval.runners import InProcessRunner
from trainers.contracts.job import ContinualEvalSpec
from trainers.contracts.methods import Method
from trainers.methods.ilora.method import FAST_DIR
from trainers.precision import compute_dtype
from trainers.servable import load_version

__all__ = ["DENSE_STEPS", "EVAL_EVERY", "LineageResult", "record_path", "run_lineage"]

DENSE_STEPS = 20  # a continual evaluation after each of a job's first steps: the stability gap
EVAL_EVERY = 10  # and every this many steps after them
BATCH_SIZE = 8


@dataclass
class LineageResult:
    """What one lineage showed (its record, `record_path`).

    Attributes:
        family: `"dev"` or `"test"`.
        variant: A key of `VARIANTS`.
        seed: Draws the tasks' entities and items, the order, and each job's seed.
        tasks: Task names in the order taught.
        base: Test accuracy of each task (in that order) under the base model.
        matrix: R[i][j]: test accuracy of task j after job i (the multitask upper bound: one row).
        fast_matrix: For I-LoRA, the same scored with the fast adapter; else empty.
        curves: Per job after the first, its continual evaluations: `step`, each earlier task's
            validation accuracy (`earlier`), the current task's (`current`), and `min_acc`
            (the tracker spans the jobs).
        costs: Per job: `steps`, `trained_tokens`, `replayed_tokens`, `train_s_per_step`
            (training only, the continual evaluations' time taken out) and `eval_s`.
        panel: For the base (`"base"`) and the last version (`"v3"`; the upper bound's `"v1"`),
            each suite's mean item score.
        host: Where it trained: `cpu` (`bench.report.cpu`) and `precision`, the trainer's
            automatic choice there (bfloat16 autocast only where the CPU has the instructions);
            empty in records made before it was kept. Step costs compare only on one host.
    """

    family: str
    variant: str
    seed: int
    tasks: list[str]
    base: list[float]
    matrix: list[list[float]]
    fast_matrix: list[list[float]] = field(default_factory=list)
    curves: list[list[dict[str, Any]]] = field(default_factory=list)
    costs: list[dict[str, float]] = field(default_factory=list)
    panel: dict[str, dict[str, float]] = field(default_factory=dict)
    host: dict[str, str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the record whole or not at all: a run stopped mid-write leaves no half record."""
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=1) + "\n")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> "LineageResult":
        return cls(**json.loads(path.read_text()))


def run_lineage(
    family_name: str,
    variant: str,
    seed: int,
    base_model: Path,
    workdir: Path,
    steps: int,
    panel: tuple[str, ...] = (),
    records: Path | None = None,
) -> LineageResult:
    """Teach the family's tasks (drawn with `seed`, in the seed's order) to one lineage of `variant`.

    Args:
        family_name: `"dev"` or `"test"` (`bench.cl.streams.FAMILIES`).
        variant: A key of `VARIANTS`.
        seed: Tasks, order and training seed.
        base_model: The base model's folder.
        workdir: Where data and versions go (`<family>/<variant>-seed<seed>/`).
        steps: Optimizer steps per job.
        panel: Health-panel suites to run on the base and the last version.
        records: The folder of finished lineages' records; `workdir` if not given.

    Returns:
        The result, also written to its record; a finished one is read back, not rerun.
    """
    lineage_dir = workdir / family_name / f"{variant}-seed{seed}"
    done = record_path(records or workdir, family_name, variant, seed)
    if done.exists():
        return LineageResult.load(done)
    tasks = [family(family_name, seed)[i] for i in task_orders(3)[seed % 3]]
    files = _write_files(tasks, workdir / family_name / "data" / f"seed{seed}")
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    base = AutoModelForCausalLM.from_pretrained(base_model).eval()
    result = LineageResult(
        family_name, variant, seed, [task.name for task in tasks], _test_scores(base, tokenizer, tasks), []
    )
    result.host = {"cpu": cpu(), "precision": str(compute_dtype("auto")).removeprefix("torch.")}
    if panel:
        result.panel["base"] = _base_panel(base, tokenizer, panel, workdir / "base-panel.json")
    lineage = _Lineage(result, tasks, files, base_model, lineage_dir, steps, tokenizer, panel)
    if VARIANTS[variant].method == "multitask":
        _multitask(lineage)
    else:
        _stream(lineage, VARIANTS[variant])
    done.parent.mkdir(parents=True, exist_ok=True)
    result.save(done)
    return result


def record_path(records: Path, family_name: str, variant: str, seed: int) -> Path:
    """Where a lineage's `LineageResult` is kept once it has finished."""
    return records / family_name / f"{variant}-seed{seed}.json"


@dataclass(frozen=True)
class _Files:
    """A task's training file and its validation probes (`eval.probes.Probes`)."""

    training: Path
    validation: Path


@dataclass(frozen=True)
class _Lineage:
    """What every job of one lineage shares: its result so far, tasks in order, files and settings."""

    result: LineageResult
    tasks: list[Task]
    files: list[_Files]
    base_model: Path
    folder: Path
    steps: int
    tokenizer: PreTrainedTokenizerBase
    panel: tuple[str, ...]

    def score(self, version_dir: Path) -> torch.nn.Module:
        """Load the version, append its test scores to the matrix and return it."""
        model = load_version(str(self.base_model), version_dir)
        self.result.matrix.append(_test_scores(model, self.tokenizer, self.tasks))
        return model


def _write_files(tasks: list[Task], folder: Path) -> list[_Files]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for task in tasks:
        training, validation = folder / f"{task.name}.jsonl", folder / f"{task.name}-validation.json"
        _write_once(training, "".join(json.dumps(row) + "\n" for row in task.train))
        _write_once(validation, json.dumps(Probes(seed=0, recall=task.validation).to_json()))
        files.append(_Files(training, validation))
    return files


def _write_once(path: Path, text: str) -> None:
    """Write `text` unless `path` holds it: lineages of one seed share their data files, and one
    may be reading them while another starts (the replace is atomic, so a reader sees one whole file)."""
    if path.exists() and path.read_text() == text:
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_text(text)
    partial.replace(path)


def _stream(lineage: _Lineage, variant: Variant) -> None:
    """One job per task, each from the version before; scores after each into the result."""
    result, method = lineage.result, Method.resolve(variant.method, variant.config)
    parent: Path | None = None
    earlier: dict[str, str] = {}
    for i, (task, task_files) in enumerate(zip(lineage.tasks, lineage.files, strict=True)):
        job_id = f"ftjob-cl-{result.variant}-{result.seed}-{i}"
        continual_eval = ContinualEvalSpec(
            every=EVAL_EVERY,
            items=len(task.validation),
            earlier=dict(earlier),
            current=str(task_files.validation),
            dense_steps=DENSE_STEPS,
        )
        output_dir = lineage.folder / f"v{i + 1}"
        run = _train(
            lineage,
            output_dir,
            task_files.training,
            lineage.steps,
            job_id=job_id,
            method=method,
            parent_dir=parent,
            version=i + 1,
            continual_eval=continual_eval if earlier else None,
        )
        evaluations = run.of_type("evaluation")
        if earlier:
            result.curves.append(_curve(evaluations, list(earlier)))
        result.costs.append(_costs(output_dir, evaluations))
        earlier[job_id] = str(task_files.validation)
        model = lineage.score(output_dir)
        if lineage.panel and i == len(lineage.tasks) - 1:
            result.panel[f"v{i + 1}"] = _panel(model, lineage.tokenizer, lineage.panel)
        if variant.method == "ilora":  # the fast adapter, which the slow one interpolates
            fast = PeftModel.from_pretrained(
                AutoModelForCausalLM.from_pretrained(lineage.base_model), output_dir / "memory" / FAST_DIR
            ).eval()
            result.fast_matrix.append(_test_scores(fast, lineage.tokenizer, lineage.tasks))
        parent = output_dir


def _multitask(lineage: _Lineage) -> None:
    """The upper bound: one `lora` job from the base on every task's rows, shuffled together."""
    rows = [row for task in lineage.tasks for row in task.train]
    random.Random(lineage.result.seed).shuffle(rows)
    training = lineage.folder / "all-tasks.jsonl"
    training.parent.mkdir(parents=True, exist_ok=True)
    training.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output_dir = lineage.folder / "v1"
    job_id = f"ftjob-cl-multitask-{lineage.result.seed}"
    _train(lineage, output_dir, training, lineage.steps * len(lineage.tasks), job_id=job_id)
    lineage.result.costs.append(_costs(output_dir, []))
    model = lineage.score(output_dir)
    if lineage.panel:
        lineage.result.panel["v1"] = _panel(model, lineage.tokenizer, lineage.panel)


def _train(lineage: _Lineage, output_dir: Path, training: Path, steps: int, **spec: Any) -> TrainerRun:
    """One job as a worker runs it (`bench.jobs`); a job an interrupted run left half done starts over."""
    shutil.rmtree(output_dir, ignore_errors=True)
    return run_job(
        job_spec(
            output_dir,
            lineage.base_model,
            training,
            steps=steps,
            lineage=f"{lineage.result.variant}-seed{lineage.result.seed}",
            batch_size=BATCH_SIZE,
            seed=lineage.result.seed,
            cache_dir=lineage.folder.parent / "cache",
            **spec,
        )
    ).check()


def _test_scores(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, tasks: list[Task]
) -> list[float]:
    """Each task's test accuracy: greedy exact match of its held-out recall items, one pass for all."""
    prompts, answers = recall_inputs([item for task in tasks for item in task.test], tokenizer)
    flags = greedy_matches(model, prompts, answers, batch_size=64)
    scores = []
    for task in tasks:
        mine, flags = flags[: len(task.test)], flags[len(task.test) :]
        scores.append(sum(mine) / len(mine))
    return scores


def _panel(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, suites: tuple[str, ...]
) -> dict[str, float]:
    """Each suite's mean item score (the cost of the stream to what the model could already do)."""
    runner = InProcessRunner(model, tokenizer, batch_size=16)
    scores = {}
    for suite in suites:
        items = run_suite(suite, runner, tokenizer).scores
        scores[suite] = sum(items) / len(items)
    return scores


def _base_panel(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, suites: tuple[str, ...], path: Path
) -> dict[str, float]:
    """The base model's panel, scored once for every lineage of the work folder."""
    scores = json.loads(path.read_text()) if path.exists() else {}
    if missing := tuple(suite for suite in suites if suite not in scores):
        scores |= _panel(model, tokenizer, missing)
        path.write_text(json.dumps(scores, indent=1) + "\n")
    return {suite: scores[suite] for suite in suites}


def _curve(evaluations: list[dict[str, Any]], earlier: list[str]) -> list[dict[str, Any]]:
    """A job's continual evaluations (its `evaluation` lines), earlier tasks in the order taught."""
    return [
        {
            "step": line["step"],
            "earlier": [line["accuracy"][job] for job in earlier],
            "current": line["current"],
            "min_acc": line["min_acc"],
        }
        for line in evaluations
    ]


def _costs(output_dir: Path, evaluations: list[dict[str, Any]]) -> dict[str, float]:
    """Steps, tokens and seconds per training step of the job in `output_dir`."""
    manifest = json.loads((output_dir / "manifest.json").read_text())["metrics"]
    eval_s = sum(line["seconds"] for line in evaluations)
    return {
        "steps": manifest["steps"],
        "trained_tokens": manifest["trained_tokens"],
        "replayed_tokens": manifest["replayed_tokens"],
        "train_s_per_step": (manifest["seconds"] - eval_s) / manifest["steps"],
        "eval_s": eval_s,
    }

"""`python -m bench.continual_eval_cost`: what continual evaluation costs a job on the real model.

On SmolLM2-135M-Instruct (`neuroplast base fetch smollm2-135m-instruct`), a `lora` lineage learns
`examples/facts-people-1.jsonl` (job 1), then `examples/facts-people-2.jsonl` (job 2) with the
service's default continual evaluation (`EvaluationConfig`: every 25 steps, 16 recall probes per
job, drawn as the control plane draws them) and without it. The cost is the evaluations' own
seconds (their events carry them) against the rest of the same run's training loop (the
manifest's seconds, start-up left out); the two runs' loop times are shown too, but on a shared
machine their difference is mostly noise. Beside it,
one evaluation's scoring pass is timed in-process the ways it could run: in float32 or the
job's bfloat16, with or without the chat template's common start run once per batch.
"""

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.jobs import job_spec, run_job
from bench.report import machine, write_section
from eval.continual import recall_inputs
from eval.probes import ProbeSizes, build_probes
from eval.recall import greedy_matches
from trainers.contracts.job import ContinualEvalSpec

WORKDIR = Path(".bench/continual-eval-cost")
EVERY, ITEMS = 25, 16  # service.schemas.lineages.EvaluationConfig's defaults
SIZES = ProbeSizes()  # the control plane's defaults: 32 recall items drawn per job


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.continual_eval_cost", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--base", type=Path, default=Path(".bench/real-model/base-smollm2"))
    parser.add_argument("--steps", type=int, default=75, help="steps of job 2 (evaluations at 0, 25, 50, 75)")
    parser.add_argument("--results", type=Path, help="write the section from a run's printed JSON")
    args = parser.parse_args(argv)
    if args.results:
        saved = json.loads(args.results.read_text())
        write_section("continual-eval-cost", _section(saved["runs"], saved["passes"], args))
        return
    files = [Path("examples/facts-people-1.jsonl"), Path("examples/facts-people-2.jsonl")]
    probes = []
    for number, path in enumerate(files, start=1):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        probes.append(WORKDIR / f"probes-{number}.json")
        probes[-1].parent.mkdir(parents=True, exist_ok=True)
        probes[-1].write_text(json.dumps(build_probes(rows, 0, SIZES).to_json()))
    v1 = WORKDIR / "v1"
    if not (v1 / "manifest.json").exists():
        print("job 1 ...", flush=True)
        run_job(job_spec(v1, args.base, files[0], steps=36, job_id="ftjob-cost-1")).check()
    runs = {}
    for name in ("with", "without"):
        print(f"job 2, {name} continual evaluation ...", flush=True)
        continual = ContinualEvalSpec(
            every=EVERY, items=ITEMS, earlier={"ftjob-cost-1": str(probes[0])}, current=str(probes[1])
        )
        output = WORKDIR / f"v2-{name}"
        shutil.rmtree(output, ignore_errors=True)
        spec = job_spec(
            output,
            args.base,
            files[1],
            steps=args.steps,
            parent_dir=v1,
            job_id="ftjob-cost-2",
            continual_eval=continual if name == "with" else None,
        )
        run = run_job(spec).check()
        manifest = json.loads((output / "manifest.json").read_text())["metrics"]
        runs[name] = {
            "loop_s": manifest["seconds"],
            "evaluations": [line["seconds"] for line in run.of_type("evaluation")],
        }
    passes = _scoring_passes(args.base, v1, probes)
    write_section("continual-eval-cost", _section(runs, passes, args))
    print(json.dumps({"runs": runs, "passes": passes}, indent=1))


def _scoring_passes(base: Path, v1: Path, probes: list[Path]) -> dict[str, float]:
    """Median seconds of one evaluation's scoring pass (16 items of each job), each way it could run."""
    from trainers.servable import load_version

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = load_version(AutoModelForCausalLM.from_pretrained(base), v1)
    items = [item for path in probes for item in json.loads(path.read_text())["recall"][:ITEMS]]
    prompts, answers = recall_inputs(items, tokenizer)
    timings = {}
    for precision in (torch.float32, torch.bfloat16):
        for shared in (False, True):
            seconds = []
            for _ in range(4):
                started = time.perf_counter()
                with torch.autocast("cpu", dtype=precision, enabled=precision != torch.float32):
                    greedy_matches(model, prompts, answers, batch_size=64, shared_prefix=shared)
                seconds.append(time.perf_counter() - started)
            label = f"{str(precision).removeprefix('torch.')}, common start {'once' if shared else 'per row'}"
            timings[label] = statistics.median(seconds[1:])  # the first warms up
    return timings


def _section(runs: dict[str, Any], passes: dict[str, float], args: argparse.Namespace) -> str:
    with_s, without_s = runs["with"]["loop_s"], runs["without"]["loop_s"]
    evaluations = runs["with"]["evaluations"]
    cost = 100 * sum(evaluations) / (with_s - sum(evaluations))
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    rows = "\n".join(f"| {label} | {seconds:.2f} |" for label, seconds in passes.items())
    return f"""## Continual evaluation on the real model: its cost in a job

`{threads}python -m bench.continual_eval_cost` on {machine()} (`bench/continual_eval_cost.py`).
SmolLM2-135M-Instruct, a `lora` job of {args.steps} steps (batch 8) on `examples/facts-people-2.jsonl`
after one on `facts-people-1.jsonl`, continual evaluation at the service's default (every {EVERY}
steps and at the first and last, {ITEMS} recall items of each job: {len(evaluations)} evaluations).

| job 2 | training loop, s |
|---|---|
| with continual evaluation | {with_s:.1f}, of which the evaluations {sum(evaluations):.1f} |
| **cost: the evaluations against the rest of the loop** | **+{cost:.1f}%** (target at most +5%) |
| without continual evaluation (another run) | {without_s:.1f} |

On a machine other work shares, two runs' loop times differ by more than the evaluations cost
{"(here the run without them was the slower)" if without_s > with_s else ""}; the share inside one run is
the figure to read.

An evaluation took {statistics.median(evaluations):.2f} s (median). One scoring pass over the same
{2 * ITEMS} items, in-process, each way it could run (median of 3, seconds; the old way is float32
with the common start per row):

| scoring pass | s |
|---|---|
{rows}

The loop scores in the job's compute precision (bfloat16 on this CPU) and, for methods whose
version is a plain PEFT adapter, runs the chat template's common start (its system prompt) once
per batch on the key-value cache (`eval/recall.py`; the same flags as running it per row, tested).
"""


if __name__ == "__main__":
    main()

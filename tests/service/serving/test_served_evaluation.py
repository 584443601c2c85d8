"""With serving on, a job's version is evaluated through the gateway, as users are served it."""

import json
from pathlib import Path

import httpx
import pytest

from service.local import local_service
from tests.service.conftest import FACTS, finished_job
from trainers.contracts.evaluation import EvaluatorSpec, ModelEvaluation
from trainers.evaluate import evaluate

pytestmark = pytest.mark.slow


def test_a_trc_version_is_scored_through_the_gateway_by_the_native_backend(
    tmp_path: Path, serving_base: Path
) -> None:
    with local_service(tmp_path / "data", reconcile_seconds="0.2", heartbeat_seconds="0.5") as service:
        headers = {"Authorization": f"Bearer {service.key}"}
        api = httpx.Client(base_url=f"{service.url}/v1", headers=headers, timeout=120)
        lineage = {
            "name": "cols",
            "base_model": str(serving_base),
            "method": {"type": "trc"},
            "health": {"gate_suites": ["perplexity"]},
        }
        api.post("/lineages", json=lineage).raise_for_status()
        file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
        body = {"model": "cols", "training_file": file_id, "hyperparameters": {"max_steps": 4}, "seed": 0}
        job = finished_job(api, api.post("/fine_tuning/jobs", json=body).json()["id"])
        events = [
            event["message"] for event in api.get(f"/fine_tuning/jobs/{job['id']}/events").json()["data"]
        ]
        retention = api.get("/lineages/cols/retention").json()
        metrics = httpx.get(f"{service.url}/metrics", headers=headers).text
        keys = api.get("/keys").json()["data"]

    assert job["status"] == "succeeded", events
    assert any("through the gateway" in message for message in events)
    # The version's scores came from the gateway: the native backend answered for cols@1.
    served = [
        line
        for line in metrics.splitlines()
        if line.startswith("neuroplast_gateway_request_duration_seconds_count")
        and 'lineage="cols"' in line
        and 'version="1"' in line
        and 'code="200"' in line
    ]
    assert served and float(served[0].rsplit(" ", 1)[1]) > 0
    # ... and they are the scores of the model itself, loaded in the evaluator.
    version_dir = service.data_dir / "store" / "default" / "cols" / "v1"
    spec = EvaluatorSpec(
        str(serving_base),
        [ModelEvaluation(1, str(version_dir), {job["id"]: str(version_dir / "probes.json")})],
    )
    (in_process,) = list(evaluate(spec))
    assert retention["versions"] == [1]
    assert isinstance(in_process.scores, dict) and retention["matrices"]
    # Where an item's two answers nearly tie (a random tiny model's often do), the server's batched
    # decoding and this process's may take different sides: an item-counted score moves by one item.
    probes = json.loads((version_dir / "probes.json").read_text())
    items = {"recall_exact": "recall", "recall_rouge_l": "recall", "recognition": "recognition"}
    for score, matrix in retention["matrices"].items():
        tolerance = 1 / len(probes[items[score]]) + 1e-9 if score in items else 0.02
        assert matrix[0][0] == pytest.approx(in_process.scores[score], abs=tolerance), score
    # The evaluator's key lived as long as the evaluation.
    evaluator_keys = [key for key in keys if (key.get("name") or "").startswith("evaluator of cols")]
    assert evaluator_keys and all(key["revoked_at"] for key in evaluator_keys)

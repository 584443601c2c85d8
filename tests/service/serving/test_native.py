"""The native backend (transformers + peft in its own process) behind the same gateway."""

import json
from pathlib import Path

import httpx
import pytest

from service.db import Database
from service.local import local_service
from tests.service.serving.conftest import publish
from tests.service.serving.greedy import NearGreedy
from tests.service.serving.test_supervisor import _wait_served

pytestmark = pytest.mark.slow

PROMPT = "Q: Where does Velo3 live?\nA:"


def test_a_lineage_of_a_native_method_is_served_by_the_native_backend(
    tmp_path: Path, versions: list[Path], serving_base: Path
) -> None:
    # `lora` stands in for titans and trc, the methods that will need this backend.
    with local_service(
        tmp_path / "data", native_backend_methods='["lora"]', reconcile_seconds="0.2"
    ) as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=120
        )
        api.post("/lineages", json={"name": "native", "base_model": str(serving_base)}).raise_for_status()
        database = Database(f"sqlite:///{service.data_dir.resolve() / 'neuroplast.db'}")
        publish(database, "default", "native", 1, str(versions[0]))
        publish(database, "default", "native", 2, str(versions[1]))
        database.dispose()
        _wait_served(api, {"native", "native@2"})

        greedy = {"prompt": PROMPT, "max_tokens": 10, "temperature": 0.0, "ignore_eos": True}
        answer = api.post("/completions", json={"model": "native", **greedy})
        pinned = api.post("/completions", json={"model": "native@1", **greedy})
        with api.stream("POST", "/completions", json={"model": "native", **greedy, "stream": True}) as stream:
            streamed = "".join(
                json.loads(line[6:])["choices"][0]["text"]
                for line in stream.iter_lines()
                if line.startswith("data: {")
            )
        rolled = api.post("/lineages/native/rollback").json()

    assert answer.headers["x-neuroplast-model"] == "default/native@2"
    first, second = (NearGreedy.peft(serving_base, version / "adapter", PROMPT, 10) for version in versions)
    assert second.admits(answer.json()["choices"][0]["text"])
    assert not first.admits(answer.json()["choices"][0]["text"])
    assert first.admits(pinned.json()["choices"][0]["text"])
    assert streamed == answer.json()["choices"][0]["text"]
    assert rolled["served_version"] == 1

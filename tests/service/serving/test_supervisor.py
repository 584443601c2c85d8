"""Fault tests: kill the supervised vLLM, and it comes back with every promoted adapter while
`/readyz` says not-ready in between; kill the service, and no serving process outlives it."""

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from service.db import Database
from service.local import local_service
from tests.service.serving.conftest import publish

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

GREEDY = {"prompt": "Q: Where does Velo3 live?\nA:", "max_tokens": 8, "temperature": 0.0, "ignore_eos": True}


def test_a_killed_vllm_is_restarted_and_gets_its_adapters_back(
    tmp_path: Path, serving_base: Path, versions: list[Path]
) -> None:
    with local_service(tmp_path / "data", reconcile_seconds="0.2") as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=120
        )
        database = Database(f"sqlite:///{service.data_dir.resolve() / 'neuroplast.db'}")
        for name, version in (("one", versions[0]), ("two", versions[1])):
            api.post("/lineages", json={"name": name, "base_model": str(serving_base)}).raise_for_status()
            publish(database, "default", name, 1, str(version))
        database.dispose()
        _wait_served(api, {"one", "two"})
        before = {name: _complete(api, name) for name in ("one", "two")}

        vllm = _vllm_process(service.process.pid)
        os.kill(vllm.pid, signal.SIGKILL)
        seen_unready = _wait_status(service.url, 503, 10)
        assert _wait_status(service.url, 200, 300)
        after = {name: _complete(api, name) for name in ("one", "two")}

    assert seen_unready
    assert before == after
    assert before["one"] != before["two"]
    assert not psutil.pid_exists(vllm.pid) or vllm.status() == psutil.STATUS_ZOMBIE


def test_a_killed_service_leaves_no_serving_process_behind(
    tmp_path: Path, serving_base: Path, versions: list[Path]
) -> None:
    """A `neuroplast serve` that crashes or is OOM-killed takes its vLLM (API server and engine
    processes) with it, so a restarted service does not start a second one beside an orphan."""
    with local_service(tmp_path / "data") as service:
        api = httpx.Client(
            base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"}, timeout=120
        )
        database = Database(f"sqlite:///{service.data_dir.resolve() / 'neuroplast.db'}")
        api.post("/lineages", json={"name": "one", "base_model": str(serving_base)}).raise_for_status()
        publish(database, "default", "one", 1, str(versions[0]))
        database.dispose()
        _wait_served(api, {"one"})
        vllm = _vllm_process(service.process.pid)
        serving = [vllm, *vllm.children(recursive=True)]

        service.process.kill()
        _, alive = psutil.wait_procs(serving, timeout=60)

    assert [process.cmdline() for process in alive if process.status() != psutil.STATUS_ZOMBIE] == []


def _wait_status(url: str, status: int, timeout: float) -> bool:
    """Poll `/readyz` until it answers `status`; False if it never did within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/readyz").status_code == status:
            return True
        time.sleep(0.05)
    return False


def _wait_served(api: httpx.Client, models: set[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not models <= {item["id"] for item in api.get("/models").json()["data"]}:
        assert time.monotonic() < deadline, f"{models} not served after {timeout} s"
        time.sleep(0.1)


def _complete(api: httpx.Client, model: str) -> str:
    answer = api.post("/completions", json={"model": model, **GREEDY})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["choices"][0]["text"])


def _vllm_process(service_pid: int) -> psutil.Process:
    children = psutil.Process(service_pid).children(recursive=True)
    return next(child for child in children if "vllm.entrypoints.openai.api_server" in child.cmdline())

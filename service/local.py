"""The embedded service as a child process, for the demo, the benchmarks and end-to-end tests."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class LocalService:
    """A running `neuroplast serve`: its URL, dev key, data folder and process."""

    url: str
    key: str
    data_dir: Path
    process: subprocess.Popen[bytes]


@contextmanager
def local_service(
    data_dir: Path,
    *,
    port: int | None = None,
    worker: bool = True,
    quiet: bool = True,
    **settings: str,
) -> Iterator[LocalService]:
    """Start `neuroplast serve` on loopback, wait until it is ready, stop it on exit.

    `settings` become `NEUROPLAST_<NAME>` environment variables of the service. Local base
    models may lie under the working directory (a checkout's `.demo/`, `.bench/`) unless
    `NEUROPLAST_MODEL_ROOTS` says otherwise.
    """
    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--dev-key",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if not worker:
        command.append("--no-worker")
    env = {
        "NEUROPLAST_MODEL_ROOTS": json.dumps([str(Path.cwd())]),
        **os.environ,
        **{f"NEUROPLAST_{name.upper()}": value for name, value in settings.items()},
    }
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL if quiet else None)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, data_dir, process)
        yield LocalService(url, (data_dir / "dev-key").read_text().strip(), data_dir, process)
    finally:
        process.terminate()
        process.wait(60)


def small_base(folder: Path) -> Path:
    """The `small` base model in `folder`, built there first (about 95 s) if it is not yet."""
    if not (folder / "config.json").exists():
        command = [sys.executable, "-m", "service.cli", "base", "build", "--out", str(folder)]
        subprocess.run([*command, "--preset", "small"], check=True)
    return folder.resolve()


def wait_ready(url: str, data_dir: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Block until `/readyz` answers 200 and the dev key is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited during start-up with status {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz").status_code == 200 and (data_dir / "dev-key").exists():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} was not ready after {timeout} s")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

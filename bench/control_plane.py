"""Control-plane start-up time and memory at rest (`neuroplast serve` with its embedded worker)."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from service.local import free_port, wait_ready


def measure(runs: int = 3) -> dict[str, float]:
    """Median start-up seconds (process start to /readyz 200) and RSS in MB after 5 s at rest."""
    startups, rss = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                folder,
            ]
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            try:
                wait_ready(f"http://127.0.0.1:{port}", Path(folder), process)
                startups.append(time.perf_counter() - started)
                for path in ("/healthz", "/readyz", "/v1/files"):
                    httpx.get(f"http://127.0.0.1:{port}{path}")
                time.sleep(5)
                rss.append(psutil.Process(process.pid).memory_info().rss / 2**20)
            finally:
                process.terminate()
                process.wait(30)
    return {"startup_s": sorted(startups)[runs // 2], "rss_mb": sorted(rss)[runs // 2]}

"""Control-plane start-up time and memory at rest (`neuroplast serve` with its embedded worker)."""

import statistics
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from service.local import local_service


def measure(runs: int = 3) -> dict[str, float]:
    """Median start-up seconds (process start to /readyz 200) and RSS in MB after 5 s at rest."""
    startups, rss = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            with local_service(Path(folder)) as service:
                startups.append(time.perf_counter() - started)
                for path in ("/healthz", "/readyz", "/v1/files"):
                    httpx.get(f"{service.url}{path}")
                time.sleep(5)
                rss.append(psutil.Process(service.process.pid).memory_info().rss / 2**20)
    return {"startup_s": statistics.median(startups), "rss_mb": statistics.median(rss)}

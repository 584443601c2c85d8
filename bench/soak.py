"""Soak: three tenants share one service and one worker; one of them is hostile.

The hostile tenant asks for 50 jobs whose loss is NaN, points webhooks at a
receiver that trickles its answer a byte at a time, one that never answers and one that fails,
and sends oversized requests. The two others must finish every job and receive every webhook
event exactly once, with the API answering them quickly throughout. Everything runs on loopback:
`neuroplast serve` (real process, SQLite, embedded worker, serving off), real HTTP receivers,
the tiny base model.

`python -m bench.soak` writes the `soak` section of docs/benchmarks.md;
tests/bench/test_soak.py runs a shorter soak and checks the same promises.
"""

import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx

from bench.report import machine, write_section
from service.local import local_service
from trainers.contracts.statuses import DeliveryStatus, JobStatus

GOOD_TENANTS = ("acme", "globex")
HOSTILE = "mallory"
FACTS = "\n".join(
    json.dumps({"prompt": f"Q: Where does Velo{i} live?\nA:", "completion": f" Velo{i} lives in Trasku."})
    for i in range(8)
)
# Lineages of the good tenants: the gate runs, on the quick suite (the tiny model has no reasoning).
QUICK_GATE = {"health": {"gate_suites": ["perplexity"]}}


def nan_base(base: Path, out: Path) -> Path:
    """A copy of `base` with one NaN weight: every job on it has a NaN loss at its first step.

    Stands in for a job that diverges; the tiny model does not diverge on demand (at a learning
    rate of 100 its loss saturates at a finite value instead).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        model.get_decoder().norm.weight[0] = float("nan")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


@dataclass(frozen=True)
class SoakConfig:
    """How much each tenant does.

    Attributes:
        good_jobs: Jobs each good tenant queues on its lineage (they run in order).
        hostile_jobs: Jobs the hostile tenant asks for at once (its quota accepts max_active_jobs).
        max_active_jobs: The per-tenant quota of unfinished jobs.
        steps: Optimizer steps of every job.
        timeout_s: Longest the whole soak may take.
    """

    good_jobs: int = 2
    hostile_jobs: int = 50
    max_active_jobs: int = 8
    steps: int = 4
    timeout_s: float = 1800.0


@dataclass
class SoakResult:
    """What the soak saw; `promises_kept` says whether the good tenants were unharmed."""

    seconds: float = 0.0
    good_jobs: dict[str, list[str]] = field(default_factory=dict)  # tenant -> final statuses
    hostile_jobs: Counter[str] = field(default_factory=Counter)  # final status -> count
    hostile_refused: Counter[int] = field(default_factory=Counter)  # HTTP status -> count
    hostile_errors: Counter[str] = field(default_factory=Counter)  # a failed job's error code -> count
    events: dict[str, int] = field(default_factory=dict)  # tenant -> events the service recorded
    received: dict[str, Counter[str]] = field(default_factory=dict)  # tenant -> event id -> deliveries
    hostile_attempts: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def p95_ms(self) -> float:
        return statistics.quantiles(self.latencies_ms, n=20)[-1]

    @property
    def problems(self) -> list[str]:
        """Every broken promise, in words; empty when the good tenants were unharmed."""
        found = []
        for tenant, statuses in self.good_jobs.items():
            if statuses.count(JobStatus.SUCCEEDED) != len(statuses):
                found.append(f"{tenant}'s jobs ended {statuses}")
            received = self.received.get(tenant, Counter())
            if len(received) != self.events.get(tenant):
                found.append(f"{tenant} received {len(received)} of {self.events.get(tenant)} events")
            if any(count != 1 for count in received.values()):
                found.append(f"{tenant} received events more than once: {dict(received)}")
        return found


def run_soak(workdir: Path, base_model: Path, broken_base: Path, config: SoakConfig) -> SoakResult:
    """Run the soak in `workdir` (its service data is replaced) and return what it saw.

    Args:
        workdir: Where the service keeps its data.
        base_model: The good tenants' base model.
        broken_base: The hostile tenant's (`nan_base`).
        config: How much each tenant does.
    """
    result = SoakResult()
    shutil.rmtree(workdir / "service", ignore_errors=True)
    settings = {
        "model_roots": json.dumps(sorted({str(base_model.parent), str(broken_base.parent)})),
        "serving": "false",
        "webhook_private_networks": "true",  # the receivers listen on loopback
        "webhook_timeout_seconds": "2",
        "webhook_backoff_seconds": "1",
        "webhook_max_attempts": "3",
        "max_active_jobs": str(config.max_active_jobs),
        "checkpoint_every": "1000",
        "log_level": "WARNING",
    }
    started = time.monotonic()
    with receivers() as urls, local_service(workdir / "service", **settings) as service:
        platform = httpx.Client(base_url=f"{service.url}/v1", headers=_bearer(service.key), timeout=60)
        clients = {name: _tenant(platform, name) for name in (*GOOD_TENANTS, HOSTILE)}
        good = {
            name: _good_tenant(clients[name], urls["healthy"] + name, base_model, config)
            for name in GOOD_TENANTS
        }
        hostile_jobs = _hostile_tenant(clients[HOSTILE], urls, broken_base, config, result)
        stop = threading.Event()
        probe = threading.Thread(
            target=_measure, args=([clients[name] for name in GOOD_TENANTS], stop, result)
        )
        probe.start()
        try:
            deadline = started + config.timeout_s
            for name, job_ids in good.items():
                result.good_jobs[name] = [
                    _finished(clients[name], job_id, deadline)["status"] for job_id in job_ids
                ]
            for job_id in hostile_jobs:
                job = _finished(clients[HOSTILE], job_id, deadline)
                result.hostile_jobs[job["status"]] += 1
                if job["error"]:
                    result.hostile_errors[job["error"]["code"]] += 1
            for name in GOOD_TENANTS:
                result.events[name] = _delivered(clients[name], deadline)
            time.sleep(3)  # a second delivery of any event would arrive by now (backoff 1 s)
        finally:
            stop.set()
            probe.join()
        result.received = {name: Counter(HealthyReceiver.seen[name]) for name in GOOD_TENANTS}
        result.hostile_attempts = _attempts(clients[HOSTILE])
    result.seconds = time.monotonic() - started
    return result


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _tenant(platform: httpx.Client, name: str) -> httpx.Client:
    platform.post("/tenants", json={"name": name}).raise_for_status()
    key = platform.post("/keys", json={"tenant": name}).json()["key"]
    return httpx.Client(base_url=platform.base_url, headers=_bearer(key), timeout=60)


def _good_tenant(api: httpx.Client, receiver: str, base_model: Path, config: SoakConfig) -> list[str]:
    api.post("/webhooks", json={"url": receiver}).raise_for_status()
    api.post(
        "/lineages", json={"name": "bot", "base_model": str(base_model), **QUICK_GATE}
    ).raise_for_status()
    file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
    body = {"model": "bot", "training_file": file_id, "hyperparameters": {"max_steps": config.steps}}
    return [api.post("/fine_tuning/jobs", json=body).json()["id"] for _ in range(config.good_jobs)]


def _hostile_tenant(
    api: httpx.Client, urls: dict[str, str], base_model: Path, config: SoakConfig, result: SoakResult
) -> list[str]:
    """Everything a hostile tenant tries; returns the ids of the jobs it got queued."""
    for name in ("trickle", "silent", "failing"):
        api.post("/webhooks", json={"url": urls[name]}).raise_for_status()
    for url in ("http://example.com:99999/", f"http://{'a' * 64}.example.com/"):
        result.hostile_refused[api.post("/webhooks", json={"url": url}).status_code] += 1
    oversized = [
        api.post("/files", files={"file": ("big.jsonl", b"x" * (101 * 2**20))}),
        api.post(
            "/lineages",
            content=b"{" + b" " * (3 * 2**20) + b"}",
            headers={"content-type": "application/json"},
        ),
        api.post(
            "/completions", json={"model": "bot", "prompt": "hi", "max_tokens": 10**8, "ignore_eos": True}
        ),
    ]
    for answer in oversized:
        result.hostile_refused[answer.status_code] += 1
    api.post(
        "/lineages", json={"name": "bot", "base_model": str(base_model), **QUICK_GATE}
    ).raise_for_status()
    file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
    body = {
        "model": "bot",
        "training_file": file_id,
        "hyperparameters": {"max_steps": config.steps, "learning_rate_multiplier": 100},
    }
    queued = []
    for _ in range(config.hostile_jobs):
        answer = api.post("/fine_tuning/jobs", json=body)
        if answer.status_code == 200:
            queued.append(answer.json()["id"])
        else:
            result.hostile_refused[answer.status_code] += 1
    return queued


def _measure(clients: list[httpx.Client], stop: threading.Event, result: SoakResult) -> None:
    """What the good tenants' dashboards do while the soak runs: list jobs and files."""
    while not stop.is_set():
        for api in clients:
            for path in ("/fine_tuning/jobs", "/files"):
                begun = time.perf_counter()
                api.get(path).raise_for_status()
                result.latencies_ms.append(1000 * (time.perf_counter() - begun))
        stop.wait(0.2)


def _finished(api: httpx.Client, job_id: str, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        job: dict[str, Any] = api.get(f"/fine_tuning/jobs/{job_id}").json()
        if job["status"] in JobStatus.terminal():
            return job
        time.sleep(0.5)
    raise TimeoutError(f"{job_id} did not finish in time")


def _delivered(api: httpx.Client, deadline: float) -> int:
    """Wait until every event of the tenant's endpoint is delivered; how many there are."""
    (endpoint,) = api.get("/webhooks").json()["data"]
    while time.monotonic() < deadline:
        deliveries = api.get(f"/webhooks/{endpoint['id']}/deliveries", params={"limit": 100}).json()["data"]
        if deliveries and all(row["status"] == DeliveryStatus.SUCCEEDED for row in deliveries):
            return len(deliveries)
        time.sleep(0.5)
    raise TimeoutError("webhook deliveries still pending")


def _attempts(api: httpx.Client) -> int:
    total = 0
    for endpoint in api.get("/webhooks").json()["data"]:
        rows = api.get(f"/webhooks/{endpoint['id']}/deliveries", params={"limit": 100}).json()["data"]
        total += sum(row["attempts"] for row in rows)
    return total


class HealthyReceiver(BaseHTTPRequestHandler):
    """Answers 204 at once; records each event id per tenant (the path names the tenant)."""

    seen: ClassVar[dict[str, list[str]]] = {}
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        with self.lock:
            self.seen.setdefault(self.path.strip("/"), []).append(self.headers["webhook-id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class FailingReceiver(HealthyReceiver):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(500)
        self.end_headers()


@contextmanager
def receivers() -> Iterator[dict[str, str]]:
    """Loopback webhook receivers: healthy (URL prefix: append the tenant), failing, trickling, silent."""
    HealthyReceiver.seen = {}
    servers = {
        name: ThreadingHTTPServer(("127.0.0.1", 0), handler)
        for name, handler in (("healthy", HealthyReceiver), ("failing", FailingReceiver))
    }
    raw = {"trickle": _raw_server(_trickle), "silent": _raw_server(_silent)}
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers.values()]
    for thread in threads:
        thread.start()
    urls = {name: f"http://127.0.0.1:{server.server_address[1]}/" for name, server in servers.items()}
    urls |= {name: f"http://127.0.0.1:{listener.getsockname()[1]}/" for name, listener in raw.items()}
    try:
        yield urls
    finally:
        for server in servers.values():
            server.shutdown()
        for listener in raw.values():
            listener.close()


def _raw_server(answer: Any) -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def _trickle(connection: socket.socket) -> None:
    """A 200 whose status line and a long body come one byte every 0.3 s."""
    with connection:
        connection.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100000:
                connection.send(bytes([byte]))
                time.sleep(0.3)
        except OSError:
            return


def _silent(connection: socket.socket) -> None:
    """Reads the request and never answers."""
    with connection:
        connection.recv(65536)
        time.sleep(600)


def section(result: SoakResult, config: SoakConfig) -> str:
    good = sum(len(statuses) for statuses in result.good_jobs.values())
    succeeded = sum(statuses.count(JobStatus.SUCCEEDED) for statuses in result.good_jobs.values())
    events = sum(result.events.values())
    received = sum(sum(counter.values()) for counter in result.received.values())
    unique = sum(len(counter) for counter in result.received.values())
    refused = ", ".join(f"{count}× {status}" for status, count in sorted(result.hostile_refused.items()))
    errors = ", ".join(f"{count}× `{code}`" for code, count in sorted(result.hostile_errors.items()))
    queued = f"{sum(result.hostile_jobs.values())}: {dict(result.hostile_jobs)} ({errors})"
    latency = (
        f"{len(result.latencies_ms)}: p50 {statistics.median(result.latencies_ms):.0f} ms, "
        f"p95 {result.p95_ms:.0f} ms"
    )
    return f"""## Soak: one hostile tenant among three

`python -m bench.soak` on {machine()}; `neuroplast serve` with one embedded worker, SQLite,
serving off, the tiny base model, everything on loopback. {result.seconds / 60:.1f} minutes.

Two tenants each queue {config.good_jobs} jobs ({config.steps} steps, the gate on the perplexity
suite) and subscribe a healthy webhook receiver. The hostile tenant asks for {config.hostile_jobs}
jobs whose loss is NaN (a base model with a NaN weight stands in for a diverging job), subscribes three
poisoned receivers (one trickling its answer a byte every 0.3 s, one never answering, one
answering 500), names two unusable webhook URLs, and sends a 101 MiB upload, a 3 MiB JSON body
and a completion with `max_tokens` 10^8. Meanwhile each good tenant lists its jobs and files
every 0.2 s, as a dashboard would.

| what | result |
|---|---|
| good tenants' jobs succeeded | {succeeded} of {good} |
| good tenants' webhook events received exactly once | {unique} of {events} ({received} deliveries in all) |
| hostile jobs queued (quota {config.max_active_jobs} unfinished) | {queued} |
| hostile requests refused | {refused} |
| delivery attempts to the hostile receivers | {result.hostile_attempts} |
| good tenants' API requests | {latency} |
"""


def main() -> None:
    workdir = Path(".bench/soak")
    base, broken = workdir / "base-tiny", workdir / "base-nan"
    if not (base / "config.json").exists():
        command = [
            sys.executable,
            "-m",
            "service.cli",
            "base",
            "build",
            "--out",
            str(base),
            "--preset",
            "tiny",
        ]
        subprocess.run(command, check=True)
    if not (broken / "config.json").exists():
        nan_base(base, broken)
    config = SoakConfig()
    result = run_soak(workdir, base.resolve(), broken.resolve(), config)
    print(section(result, config))
    if result.problems:
        raise SystemExit("soak: " + "; ".join(result.problems))
    write_section("soak", section(result, config))


if __name__ == "__main__":
    main()

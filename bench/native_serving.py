"""Native backend against vLLM under 8 concurrent clients, on the real SmolLM2-135M-Instruct.

`python -m bench.native_serving` trains a `lora`, a `trc` and a `titans` version for a few steps
(`bench/jobs.py`), then serves each through `python -m trainers.native_server` as the supervisor
starts it, and the `lora` one also through vLLM (the tier's command line), one server at a time,
and sends the same greedy requests from 8 client threads: completion tokens per second over the
whole run, and each request's latency (p50, p95). The native `lora` run is repeated with
`--max-batch 1` (one request at a time, as the backend was before batching) to measure batching.
Writes its section of docs/benchmarks.md.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.jobs import job_spec, run_job
from bench.report import machine, write_section
from service.serving.supervisor import running_backend
from trainers.contracts.methods import Method
from trainers.native_server.engine import MAX_SECONDS

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / ".bench" / "real-model" / "base-smollm2"
TRAINING = REPO / "examples" / "facts-people-1.jsonl"
CLIENTS, REQUESTS, MAX_TOKENS = 8, 4, 32
QUESTIONS = [
    "Where does Brisa Umbra work?",
    "Which city is Hesper Yardley from?",
    "What pet does Liesl Morrow have?",
    "Tell me about the harbour town and the people who keep bees there.",
    "Who is Velo3?",
    "What is the capital of the country where the old weaving hall stands, and why is it known?",
    "Name three colours.",
    "How do bees make honey?",
]
COMMAND = "python -m bench.native_serving"


def train(root: Path, method: str) -> Path:
    """A version of `method` on SmolLM2 after a few optimizer steps; its folder."""
    out = root / method / "v1"
    run_job(job_spec(out, BASE, TRAINING, steps=2, method=Method.resolve(method), lineage=method)).check()
    return out


def load(url: str, name: str, version: Path) -> None:
    answer = httpx.post(
        f"{url}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(version / "adapter")}
    )
    answer.raise_for_status()


def measure(url: str, model: str) -> dict[str, float]:
    """8 clients, each sending its requests one after the other: tokens/s, latency p50/p95 (s)."""
    httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": "Hi", "max_tokens": 2}, timeout=300)

    def client(index: int) -> tuple[list[float], int]:
        latencies, tokens = [], 0
        with httpx.Client(timeout=600) as http:
            for request in range(REQUESTS):
                question = QUESTIONS[(index + request) % len(QUESTIONS)]
                body = {"model": model, "prompt": f"Q: {question}\nA:", "max_tokens": MAX_TOKENS}
                body |= {"temperature": 0, "ignore_eos": True}
                started = time.monotonic()
                answer = http.post(f"{url}/v1/completions", json=body)
                answer.raise_for_status()
                latencies.append(time.monotonic() - started)
                tokens += answer.json()["usage"]["completion_tokens"]
        return latencies, tokens

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    wall = time.monotonic() - started
    latencies = sorted(latency for own, _ in results for latency in own)
    return {
        "tokens_per_second": sum(tokens for _, tokens in results) / wall,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
    }


def load_average() -> float:
    return os.getloadavg()[0]


def run(root: Path) -> dict[str, dict[str, float]]:
    """Every configuration's figures, by name."""
    versions = {method: train(root, method) for method in ("lora", "trc", "titans")}
    results: dict[str, dict[str, float]] = {}
    loads = [load_average()]
    with running_backend(BASE, root / "native.log", backend="native") as native:
        for method, version in versions.items():
            load(native.url, f"bench/{method}@1", version)
        for method in versions:
            results[f"native {method}"] = measure(native.url, f"bench/{method}@1")
            loads.append(load_average())
    one_at_a_time = ["--max-batch", "1"]
    with running_backend(BASE, root / "native-one.log", backend="native", extra_args=one_at_a_time) as native:
        load(native.url, "bench/lora@1", versions["lora"])
        results["native lora, one request at a time"] = measure(native.url, "bench/lora@1")
    with running_backend(BASE, root / "vllm.log") as vllm:
        load(vllm.url, "bench/lora@1", versions["lora"])
        results["vLLM lora"] = measure(vllm.url, "bench/lora@1")
        loads.append(load_average())
    results["load"] = {"before": loads[0], "max": max(loads)}
    return results


def section(results: dict[str, dict[str, float]]) -> str:
    load = results.pop("load")
    vllm = results["vLLM lora"]["tokens_per_second"]
    rows = "\n".join(
        f"| {name} | {r['tokens_per_second']:.1f} | {r['tokens_per_second'] / vllm:.2f} "
        f"| {r['p50']:.2f} | {r['p95']:.2f} |"
        for name, r in results.items()
    )
    one = results["native lora, one request at a time"]["tokens_per_second"]
    trc_limit = ""
    if results["native trc"]["p50"] >= 0.9 * MAX_SECONDS:
        trc_limit = f", and its batches ran into the {MAX_SECONDS:.0f} s time limit (answers cut short)"
    batched = results["native lora"]["tokens_per_second"]
    busy = os.cpu_count() or 1
    fairness = (
        f"The machine's 1-minute load average was {load['before']:.1f} before the run and at most "
        f"{load['max']:.1f} during it on {busy} cores"
        + (
            ": other work shared the cores at times, so the absolute figures are noisy; the ratios, "
            "measured back to back, are the better guide."
            if load["before"] > 0.5
            else "."
        )
    )
    return f"""## Native serving: batched native backend against vLLM

{machine()}. `{COMMAND}` (`bench/native_serving.py`): SmolLM2-135M-Instruct
(`.bench/real-model/base-smollm2`), a `lora`, a `trc` and a `titans` version trained for 2 steps
on `examples/facts-people-1.jsonl` (`bench/jobs.py`), served one server at a time:
`python -m trainers.native_server` (dynamic batching, up to 16 rows, 10 ms window when idle) and
vLLM (`--enable-lora`, as the serving tier starts it).
{CLIENTS} client threads each send {REQUESTS} greedy completions of {MAX_TOKENS} tokens (`ignore_eos`)
one after the other, prompts of 8 different questions (different lengths). Throughput is completion
tokens per second over the whole run; latency is per request.

| server, version | tokens/s | / vLLM lora | p50 (s) | p95 (s) |
|---|---|---|---|---|
{rows}

Native against vLLM on the same `lora` version: {batched / vllm:.2f} of its throughput (target: at
least 0.5; {"met" if batched / vllm >= 0.5 else "not met in this run"}). Batching: the native backend
serves the `lora` version at {batched / one:.1f}x the throughput it had one request at a time
({one:.1f} -> {batched:.1f} tokens/s). `trc` decodes with the key-value cache too, its router and
hippocampal read keeping their own input at earlier positions beside it{trc_limit}. `titans` rows
share a batch only when their prompt lengths agree modulo the memory's chunk (16 tokens here;
docs/serving.md), so these 8 questions split into several batches.
{fairness}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--results", type=Path, help="write the section from a run's printed JSON")
    args = parser.parse_args()
    if args.results:
        results = json.loads(args.results.read_text())
    elif args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run(args.keep)
    else:
        with tempfile.TemporaryDirectory() as folder:
            results = run(Path(folder))
    print(json.dumps(results, indent=1))
    write_section("native-serving", section(results))


if __name__ == "__main__":
    main()

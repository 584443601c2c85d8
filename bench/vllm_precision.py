"""vLLM's CPU build in bfloat16 against float32, on the real SmolLM2-135M-Instruct.

`python -m bench.vllm_precision` starts vLLM on SmolLM2 as the serving tier does, once with
`--dtype bfloat16` (what vLLM picks for a float32 checkpoint on a CPU) and once with
`--dtype float32` (the tier's default, `service/settings.py`), one server at a time, and sends
requests one after another over the health panel's reference paragraphs: a one-token completion
(the prompt's forward pass), the same with the prompt's log-probabilities echoed (what the
evaluator's likelihoods ask) and 16 greedy tokens. Beside them, a bare matrix product of
SmolLM2's shape in each dtype on one thread, in this process's torch. Writes its section of
docs/benchmarks.md.
"""

import statistics
import tempfile
import time
from pathlib import Path

import httpx
import torch

from bench.native_serving import BASE
from bench.real_model import fetched_base
from bench.report import cpu, machine, write_section
from eval.panel.perplexity import reference_chunks
from service.serving.supervisor import running_backend
from service.settings import VLLM_DEFAULT_ARGS

COMMAND = "python -m bench.vllm_precision"
PROMPTS = 8
REQUESTS: dict[str, dict[str, object]] = {
    "one token": {"max_tokens": 1},
    "one token, prompt logprobs echoed": {"max_tokens": 1, "echo": True, "logprobs": 0},
    "16 greedy tokens": {"max_tokens": 16, "ignore_eos": True},
}


def main() -> None:
    fetched_base()  # into BASE; at once when it is there
    chunks = reference_chunks()[:PROMPTS]
    args = list(VLLM_DEFAULT_ARGS)
    dtype_at = args.index("--dtype") + 1
    latencies = {}
    for dtype in ("bfloat16", "float32"):
        args[dtype_at] = dtype
        with (
            tempfile.TemporaryDirectory() as scratch,
            running_backend(BASE, Path(scratch) / "vllm.log", vllm_args=args) as vllm,
        ):
            print(f"vLLM in {dtype} ...", flush=True)
            latencies[dtype] = {
                name: _median_latency(vllm.url, chunks, extra) for name, extra in REQUESTS.items()
            }
    products = {dtype: _product_ms(getattr(torch, dtype)) for dtype in ("bfloat16", "float32")}
    write_section("vllm-precision", _section(latencies, products))
    print(latencies, products)


def _median_latency(url: str, prompts: list[str], extra: dict[str, object]) -> float:
    """Median seconds of one request per prompt, sent one after another, after two unmeasured ones."""
    with httpx.Client(base_url=f"{url}/v1", timeout=300) as http:

        def ask(prompt: str) -> float:
            started = time.perf_counter()
            http.post("/completions", json={"model": str(BASE), "prompt": prompt, **extra}).raise_for_status()
            return time.perf_counter() - started

        for prompt in prompts[:2]:
            ask(prompt)
        return statistics.median(ask(prompt) for prompt in prompts)


def _product_ms(dtype: torch.dtype, rows: int = 100) -> float:
    """Milliseconds of one (rows x 576) @ (576 x 1536) product, SmolLM2's MLP up-projection, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inputs, weight = torch.randn(rows, 576, dtype=dtype), torch.randn(1536, 576, dtype=dtype)
        for _ in range(3):
            torch.nn.functional.linear(inputs, weight)
        started, repeats = time.perf_counter(), 20
        for _ in range(repeats):
            torch.nn.functional.linear(inputs, weight)
        return (time.perf_counter() - started) / repeats * 1000
    finally:
        torch.set_num_threads(threads)


def _section(latencies: dict[str, dict[str, float]], products: dict[str, float]) -> str:
    rows = "\n".join(
        f"| {name} | {latencies['bfloat16'][name]:.2f} | {latencies['float32'][name]:.2f} "
        f"| {latencies['bfloat16'][name] / latencies['float32'][name]:.1f}x |"
        for name in REQUESTS
    )
    return f"""## vLLM on a CPU: bfloat16 against float32

`{COMMAND}` ({machine()}; CPU: {cpu()}). vLLM's CPU build on SmolLM2-135M-Instruct,
started as the serving tier starts it with `--dtype bfloat16` (what vLLM picks for a float32
checkpoint on a CPU) and with `--dtype float32` (the tier's default, `NEUROPLAST_VLLM_ARGS`);
median seconds of one request over {PROMPTS} of the health panel's reference paragraphs, sent one
after another. The evaluator's likelihoods are the echoed requests (docs/serving.md, "Precision").

| request | bfloat16 (s) | float32 (s) | bfloat16 / float32 |
|---|---|---|---|
{rows}

A bare product of SmolLM2's MLP shape (100 x 576 by 576 x 1536) on one thread in this torch
({torch.__version__}): {products["bfloat16"]:.1f} ms in bfloat16, {products["float32"]:.1f} ms in float32.
"""


if __name__ == "__main__":
    main()

"""Titans benchmark: needle recall beyond an attention window, chunked-update speed, memory per request.

`python -m bench.titans` (also part of `make bench`). Writes the `titans` section of
docs/benchmarks.md. Everything is built in-process: no hub, no data set.

1. Recall: a frozen random 2-layer Mistral whose attention sees only the last `WINDOW` tokens
   reads `SEQ`-token sequences of filler with one needle (a marker, then one of `VALUES` value
   tokens) early on, and must name the value at the end, far beyond what its layers can see.
   `titans` (memory branches on both layers) and `lora` (all linear layers) train the same steps
   on the same batches, with the LoRA rank chosen to match titans' trainable parameters.
2. Speed: the memory's update over 1024 tokens written in chunks against written token by token
   (the same module with `chunk_size=1`, which is the paper's recurrence itself).
3. Memory per request: the bytes of the memory state a request carries.
"""

import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import MistralConfig, MistralForCausalLM

from bench.report import machine, write_section
from memory.neural_memory import NeuralMemory
from trainers.methods.titans.config import TitansConfig
from trainers.methods.titans.layer import TitansForCausalLM

WINDOW, SEQ, VALUES, NEEDLE_BEFORE = 8, 128, 16, 32  # the needle sits in the first 32 tokens
MARKER, QUERY, FIRST_VALUE, FIRST_FILLER, VOCAB = 1, 2, 3, 3 + VALUES, 64
STEPS, BATCH, LEARNING_RATE, EVAL_ROWS = 400, 16, 3e-3, 512
TITANS = TitansConfig(heads=1, head_dim=32, expansion=2, chunk_size=8, memory_layers=[0, 1])
SPEED_SEQ, SPEED_RUNS = 1024, 3


def main() -> None:
    # One thread: these are small ops, and on a shared 2-core machine threads that wait for each
    # other made every step 10-40x slower (measured).
    torch.set_num_threads(1)
    recall = measure_recall()
    print(recall, flush=True)
    speed = measure_speed()
    print(speed, flush=True)
    write_section("titans", _section(recall, speed))


def measure_recall() -> dict[str, float]:
    """Needle accuracy (and trainable parameters, seconds) of titans and lora after `STEPS` steps."""
    titans = _titans_model()
    budget = _trainable(titans)
    rank = round(budget / _lora_parameters_per_rank(_base()))
    lora = get_peft_model(
        _base(), LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    results: dict[str, float] = {"lora_rank": rank}
    for name, model in (("titans", titans), ("lora", lora)):
        started = time.monotonic()
        _train(model)
        results[f"{name}_s"] = time.monotonic() - started
        results[f"{name}_params"] = _trainable(model)
        results[f"{name}_accuracy"] = _accuracy(model)
    results["base_accuracy"] = _accuracy(_base())
    return results


def measure_speed() -> dict[str, float]:
    """Tokens per second of the memory's update over `SPEED_SEQ` tokens, by chunk size; state bytes.

    Runs alternate between chunk sizes, so load from anything else on the machine hits them alike.
    """
    x = torch.randn(1, SPEED_SEQ, 256, generator=torch.Generator().manual_seed(0))  # the small base's width
    memories = {}
    for chunk in (1, 16, 64):
        torch.manual_seed(0)
        memories[chunk] = NeuralMemory(256, chunk_size=chunk).eval()  # the method's default memory shape
    seconds: dict[int, list[float]] = {chunk: [] for chunk in memories}
    with torch.no_grad():
        for _ in range(SPEED_RUNS):
            for chunk, memory in memories.items():
                started = time.perf_counter()
                state = memory(x).state
                seconds[chunk].append(time.perf_counter() - started)
    result = {
        f"chunk{chunk}_tokens_per_s": SPEED_SEQ / statistics.median(runs) for chunk, runs in seconds.items()
    }
    result["state_bytes"] = sum(t.numel() * t.element_size() for t in state.tensors().values())
    return result


def _base() -> MistralForCausalLM:
    """The frozen base: the same random weights every call, attention limited to `WINDOW` tokens."""
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=WINDOW,
        max_position_embeddings=SEQ,
    )
    return MistralForCausalLM(config).requires_grad_(False)


def _titans_model() -> TitansForCausalLM:
    base = _base()
    torch.manual_seed(1)
    return TitansForCausalLM(base, base, TITANS)


def _batch(rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Needle sequences (rows, SEQ) ending in the query token, and their values (rows,)."""
    ids = torch.randint(FIRST_FILLER, VOCAB, (rows, SEQ), generator=generator)
    values = torch.randint(FIRST_VALUE, FIRST_VALUE + VALUES, (rows,), generator=generator)
    where = torch.randint(1, NEEDLE_BEFORE - 1, (rows,), generator=generator)
    rows_index = torch.arange(rows)
    ids[rows_index, where] = MARKER
    ids[rows_index, where + 1] = values
    ids[:, -1] = QUERY
    return ids, values


def _train(model: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    model.train()
    for _ in range(STEPS):
        ids, values = _batch(BATCH, generator)
        logits = model(input_ids=ids).logits[:, -1]  # (batch, vocab): the answer after the query
        loss = torch.nn.functional.cross_entropy(logits, values)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@torch.no_grad()
def _accuracy(model: torch.nn.Module) -> float:
    ids, values = _batch(EVAL_ROWS, torch.Generator().manual_seed(3))  # held-out sequences
    logits = torch.cat([model(input_ids=chunk).logits[:, -1] for chunk in ids.split(64)])
    return float((logits.argmax(-1) == values).float().mean())


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _lora_parameters_per_rank(base: MistralForCausalLM) -> int:
    """LoRA parameters per unit of rank on every linear layer but the head: sum of (in + out)."""
    head = base.get_output_embeddings()
    return sum(
        m.in_features + m.out_features
        for m in base.modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    )


def _section(recall: dict[str, float], speed: dict[str, float]) -> str:
    lora = f"{recall['lora_params']:,.0f} | {100 * recall['lora_accuracy']:.1f}% | {recall['lora_s']:.0f} s"
    titans = f"{recall['titans_params']:,.0f} | {100 * recall['titans_accuracy']:.1f}%"
    titans += f" | {recall['titans_s']:.0f} s"
    per_token = speed["chunk1_tokens_per_s"]
    chunk16 = f"{speed['chunk16_tokens_per_s']:,.0f} | {speed['chunk16_tokens_per_s'] / per_token:.1f}x"
    chunk64 = f"{speed['chunk64_tokens_per_s']:,.0f} | {speed['chunk64_tokens_per_s'] / per_token:.1f}x"
    return f"""## Titans: needle recall beyond the attention window, update speed, memory per request

`python -m bench.titans` on {machine()} (shared with other jobs: timings are noisy, ratios come
from the same run).

**Recall beyond the window.** A frozen random 2-layer Mistral (hidden 64) whose attention sees
the last {WINDOW} tokens reads {SEQ}-token sequences of random filler holding one needle (a
marker token, then one of {VALUES} value tokens) in the first {NEEDLE_BEFORE} tokens, and must
name the value after a query token at the end: {SEQ - NEEDLE_BEFORE} or more tokens away, far
past the ~{2 * WINDOW} tokens its two layers can reach. Both methods train {STEPS} steps (batch
{BATCH}, AdamW lr {LEARNING_RATE}, the same batches) at an equal budget of trainable parameters
and are scored on {EVAL_ROWS} held-out sequences (chance {100 / VALUES:.1f}%).

| model | trainable parameters | needle accuracy | training time |
|---|---|---|---|
| base, untrained | 0 | {100 * recall["base_accuracy"]:.1f}% | - |
| `lora` (rank {recall["lora_rank"]:.0f}, all linear layers) | {lora} |
| `titans` (one 32-wide head, depth 2, chunks of {TITANS.chunk_size}, both layers) | {titans} |

**Update speed.** The memory of the default `titans` config (4 heads of 64, MLP depth 2,
expansion 4) on a 256-wide input, {SPEED_SEQ} tokens read and written, batch 1, no gradient;
token by token is the same module with `chunk_size=1`, i.e. the paper's recurrence itself. A chunk
is one sequential step whatever its length (its queries and keys through the memory, the keys'
gradients, one write of weights and momentum per layer), so chunks of b are at most b times
faster than token by token.

| update | tokens per second | against token by token |
|---|---|---|
| token by token | {per_token:,.0f} | 1.0x |
| chunks of 16 (default) | {chunk16} |
| chunks of 64 | {chunk64} |

**Memory per request.** A request's memory state (weights and momentum of the memory MLP of
every head, plus the unwritten tail of the current chunk, fp32) is
{speed["state_bytes"] / 2**20:.2f} MiB per attached layer with the default config, whatever the
request's length; the `small` base's default attachment (3 layers) holds
{3 * speed["state_bytes"] / 2**20:.1f} MiB per request or session.
"""


if __name__ == "__main__":
    main()

"""Build a small base model and its tokenizer in-process, without any network.

    from trainers.base_model.build import build_base
    build_base(Path(".demo/base"), preset="small")
    build_base(Path("tests/qwen2"), preset="tiny", architecture="qwen2")

`tiny` is a random model for tests (seconds to build). `small` is pretrained on the generated
corpus for about a minute and a half on 2 CPU cores, so LoRA jobs that teach new facts in the
corpus's phrasings learn visibly. Llama is the default architecture; `architectures.py` lists the
others.
"""

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from trainers.base_model import corpus
from trainers.base_model.architectures import model_config
from trainers.base_model.presets import PRESETS, Preset
from trainers.base_model.tokenizer import train_tokenizer

__all__ = ["PRESETS", "Preset", "build_base"]


def build_base(
    out: Path,
    preset: str | Preset = "small",
    seed: int = 0,
    log: Callable[[str], None] = print,
    architecture: str = "llama",
) -> Path:
    """Write a causal LM and its tokenizer to `out` in the standard Hugging Face layout.

    The result loads with `AutoModelForCausalLM.from_pretrained(out)` and
    `AutoTokenizer.from_pretrained(out)`; `out/base_model.json` records how it was built.

    Args:
        out: Folder to write (created if missing; existing files are overwritten).
        preset: A key of `PRESETS`, or sizes of one's own (e.g. a preset with grouped-query
            attention: `dataclasses.replace(PRESETS["tiny"], num_kv_heads=2)`).
        seed: Seeds the corpus, the initial weights and the pretraining order.
        log: Receives one line per stage.
        architecture: The model family, one of `architectures.ARCHITECTURES`.

    Returns:
        `out`.
    """
    spec, name = (PRESETS[preset], preset) if isinstance(preset, str) else (preset, "own sizes")
    started = time.monotonic()
    torch.manual_seed(seed)

    documents = corpus.documents(spec.documents, seed=seed)
    tokenizer = train_tokenizer(documents, spec.vocab_size)
    log(f"tokenizer: {len(tokenizer)} tokens from {len(documents)} documents")

    model = AutoModelForCausalLM.from_config(model_config(architecture, spec, tokenizer))
    parameters = sum(p.numel() for p in model.parameters())
    log(f"model: {parameters / 1e6:.2f}M parameters ({architecture}, {name})")

    pretrain_loss = None
    if spec.pretrain_steps:
        texts = documents + [
            tokenizer.apply_chat_template(messages, tokenize=False)
            for messages in corpus.conversations(spec.conversations, seed=seed)
        ]
        pretrain_loss = _pretrain(model, tokenizer, texts, spec, seed)
        log(f"pretrained {spec.pretrain_steps} steps, final loss {pretrain_loss:.3f}")

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    seconds = round(time.monotonic() - started, 1)
    record = {
        "preset": preset if isinstance(preset, str) else None,  # own sizes: see "config"
        "architecture": architecture,
        "seed": seed,
        "parameters": parameters,
        "pretrain_loss": pretrain_loss,
        "seconds": seconds,
        "config": asdict(spec),
    }
    (out / "base_model.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"base model written to {out} in {seconds} s")
    return out


def _pretrain(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    texts: list[str],
    spec: Preset,
    seed: int,
) -> float:
    """Next-token pretraining on packed documents; returns the mean loss of the last steps."""
    sequences = _pack(tokenizer, texts, spec.seq_len, seed)  # (n_sequences, seq_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    warmup = max(1, spec.pretrain_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _cosine_with_warmup(step, warmup, spec.pretrain_steps)
    )
    order = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(seed))
    model.train()
    recent: list[float] = []
    progress = tqdm(range(spec.pretrain_steps), desc="pretraining", unit="step")
    for step in progress:
        positions = torch.arange(step * spec.batch_size, (step + 1) * spec.batch_size)
        batch = sequences[order[positions % len(order)]]  # (batch, seq_len)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        recent = [*recent[-19:], loss.item()]
        progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return round(sum(recent) / len(recent), 4)


def _pack(tokenizer: PreTrainedTokenizerFast, texts: list[str], seq_len: int, seed: int) -> torch.Tensor:
    """Shuffle texts, join them as `<s> text </s>` and cut the stream into sequences."""
    texts = list(texts)
    random.Random(seed).shuffle(texts)
    # Chat renderings already start with <s> (the template writes it) and end with </s>\n.
    stream: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        if ids[0] != tokenizer.bos_token_id:
            ids = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
        stream += ids
    n_sequences = len(stream) // seq_len
    return torch.tensor(stream[: n_sequences * seq_len]).view(n_sequences, seq_len)


def _cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

"""The one data pipeline: JSONL training file -> tokenized rows -> padded batches.

Row shapes (docs/training.md, loss tokens) and where the loss goes:

- `{"text"}`: every token, then `</s>`;
- `{"prompt", "completion"}`: the completion tokens and the `</s>` added after them;
- `{"messages": [{"role", "content"}, ...]}`: rendered with the tokenizer's chat template; the
  assistant turns (with whatever end-of-turn the template writes after them), less those with
  `"weight": 0` (OpenAI's per-message weight: such a turn is context, not a target).

Tokenized files are cached under `cache_dir/tokenized/`, keyed by the file's sha256, the
tokenizer and `max_seq_len`, so a resumed or repeated job skips tokenization.
"""

import functools
import hashlib
import math
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, load_from_disk
from transformers import PreTrainedTokenizerBase

__all__ = ["IGNORE_INDEX", "BatchOrder", "Collator", "TrainingData", "load_training_data", "render_row"]

IGNORE_INDEX = -100  # label of tokens that carry no loss (the value HF losses skip)
# Bump when the rendering below changes, so cached files made by older code are not reused.
RENDER_VERSION = 1


@dataclass(frozen=True)
class TrainingData:
    """Tokenized training rows.

    Attributes:
        rows: Columns `input_ids`, `labels` (both length `length`) and `length`.
        dropped: Rows of the file left out because truncation removed all their loss tokens.
    """

    rows: Dataset
    dropped: int


def load_training_data(
    training_file: Path,
    file_sha256: str,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len: int,
    cache_dir: Path,
    held_out_rows: Sequence[int] = (),
) -> TrainingData:
    """Load, render and tokenize a JSONL training file, or take it from the cache.

    Args:
        training_file: The JSONL file (rows already validated by the control plane).
        file_sha256: Its hash, part of the cache key.
        tokenizer: The base model's (fast) tokenizer.
        max_seq_len: Rows are cut to this many tokens.
        cache_dir: Root of the cache; written atomically, shared by concurrent jobs.
        held_out_rows: Rows (from 0) kept out of training: the job's held-out split.

    Returns:
        The rows that have at least one loss token, less the held-out ones, and how many of the
        others were dropped.
    """
    cached = cache_dir / "tokenized" / _cache_key(file_sha256, tokenizer, max_seq_len)
    if not cached.exists():
        raw = Dataset.from_json(str(training_file), cache_dir=str(cache_dir / "json"))
        tokenized = raw.map(
            render_row,
            fn_kwargs={"tokenizer": tokenizer, "max_seq_len": max_seq_len},
            remove_columns=raw.column_names,
            keep_in_memory=True,
            desc="tokenizing",
        )
        _save_atomically(tokenized, cached)
    rows = load_from_disk(str(cached))
    held_out = set(held_out_rows)
    trained = [i for i in range(len(rows)) if i not in held_out]
    labels = rows["labels"]
    keep = [i for i in trained if any(x != IGNORE_INDEX for x in labels[i])]
    return TrainingData(rows=rows.select(keep), dropped=len(trained) - len(keep))


def render_row(row: dict[str, Any], tokenizer: PreTrainedTokenizerBase, max_seq_len: int) -> dict[str, Any]:
    """Token ids and labels of one row of any accepted shape, truncated to `max_seq_len`.

    Args:
        row: One JSONL row; in a file that mixes shapes the other shapes' keys are None.
        tokenizer: The base model's tokenizer.
        max_seq_len: Maximum tokens kept (from the start).

    Returns:
        `input_ids`, `labels` (IGNORE_INDEX where no loss) and `length`.
    """
    if row.get("messages") is not None:
        input_ids, labels = _render_messages(row["messages"], tokenizer)
    elif row.get("prompt") is not None:
        prompt = tokenizer(row["prompt"])["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        completion = [*completion, tokenizer.eos_token_id]
        input_ids, labels = prompt + completion, [IGNORE_INDEX] * len(prompt) + completion
    else:
        input_ids = [*tokenizer(row["text"])["input_ids"], tokenizer.eos_token_id]
        labels = list(input_ids)
    input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    return {"input_ids": input_ids, "labels": labels, "length": len(input_ids)}


@dataclass(frozen=True)
class BatchOrder:
    """Which rows form the batch of each step: a fresh shuffle per epoch, fixed by the seed.

    The batch of a step depends only on `(seed, step)`, so a resumed job continues with
    exactly the batches it had not done yet.

    Attributes:
        rows: Number of training rows.
        batch_size: Rows per step (the last batch of an epoch may be smaller).
        seed: Seeds the shuffles.
    """

    rows: int
    batch_size: int
    seed: int

    @property
    def steps_per_epoch(self) -> int:
        """Steps that see every row once."""
        return math.ceil(self.rows / self.batch_size)

    def batch(self, step: int) -> list[int]:
        """Row indices of the batch for `step` (counting from 0; epochs repeat past the end)."""
        epoch, index = divmod(step, self.steps_per_epoch)
        return self._epoch_order(epoch)[index * self.batch_size : (index + 1) * self.batch_size]

    @functools.lru_cache(maxsize=2)  # noqa: B019 (a handful of small, frozen instances per job)
    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(self.rows))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order


@dataclass(frozen=True)
class Collator:
    """Right-pads rows into a batch.

    Attributes:
        pad_token_id: Fills `input_ids` past each row's end (masked out, label IGNORE_INDEX).
    """

    pad_token_id: int

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """`input_ids`, `attention_mask`, `labels`, each (batch, longest row), and `replayed` (batch,).

        `replayed` is True for rows that carry `"replayed": True` (rows a method replays).
        """
        width = max(row["length"] for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id)  # (batch, seq)
        labels = torch.full((len(rows), width), IGNORE_INDEX)  # (batch, seq)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, seq)
        for i, row in enumerate(rows):
            n = row["length"]
            input_ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            attention_mask[i, :n] = 1
        replayed = torch.tensor([bool(row.get("replayed")) for row in rows])  # (batch,)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "replayed": replayed,
        }


# ---------------------------------------------------------------------------------------------
# Helpers, in call order.


def _cache_key(file_sha256: str, tokenizer: PreTrainedTokenizerBase, max_seq_len: int) -> str:
    tokenizer_identity = "\n".join(
        [
            tokenizer.backend_tokenizer.to_str(),
            tokenizer.chat_template or "",
            str(tokenizer.bos_token),
            str(tokenizer.eos_token),
        ]
    )
    tokenizer_hash = hashlib.sha256(tokenizer_identity.encode()).hexdigest()[:16]
    return f"{file_sha256[:32]}-{tokenizer_hash}-{max_seq_len}-v{RENDER_VERSION}"


def _save_atomically(dataset: Dataset, path: Path) -> None:
    # Another job may tokenize the same file at the same time: write aside, then rename; the
    # loser of the race just discards its copy.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    dataset.save_to_disk(str(tmp))
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists():
            raise


def _render_messages(
    messages: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
) -> tuple[list[int], list[int]]:
    """Chat-template rendering with loss on the assistant turns only, less those of weight 0.

    The character span of assistant turn i runs from the end of the rendering of the
    messages before it (with the generation prompt) to the end of the rendering that includes
    it; tokens starting inside a span carry loss. This assumes, as common chat templates do,
    that rendering a conversation's first messages gives a prefix of rendering all of them.
    """
    chat = _as_chat(messages)
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    # In a file where some messages carry `weight`, the others read back with `weight: None`.
    spans = [
        (
            len(tokenizer.apply_chat_template(chat[:i], tokenize=False, add_generation_prompt=True)),
            len(tokenizer.apply_chat_template(chat[: i + 1], tokenize=False)),
        )
        for i, message in enumerate(messages)
        if message["role"] == "assistant" and message.get("weight") != 0
    ]
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoding["input_ids"]
    labels = [
        token if any(start <= offset < end for start, end in spans) else IGNORE_INDEX
        for token, (offset, _) in zip(input_ids, encoding["offset_mapping"], strict=True)
    ]
    return input_ids, labels


def _as_chat(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    # What a chat template sees: role and content only (a template may render any other key).
    return [{"role": m["role"], "content": m["content"]} for m in messages]

"""Direct Preference Optimization (Rafailov et al., arXiv 2305.18290) for the shared loop.

A `dpo` job's rows are preference pairs (OpenAI's format): a conversation `input.messages`, a
`preferred_output` y_w and a `non_preferred_output` y_l. Each side is rendered with the chat
template as the conversation plus that output, with loss tokens on the output only. Per pair,

    loss = -log sigmoid(beta * ((log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))))

where log pi(y|x) sums the token log-probabilities of the output's tokens. The reference pi_ref is
the model as the job loaded it from its parent, before any step: the log-probabilities of every
pair under it are computed once, before training (and before a resume restores a checkpoint's
weights), and ride with the pairs. Rows a method replays from earlier jobs are examples to
imitate: they add their token cross-entropy to the batch's DPO loss.

A validation file of pairs is scored per pair (`pair_sums`): `valid_loss` is the mean DPO loss of
its pairs, with their own reference log-probabilities from the same model as loaded, and
`valid_mean_token_accuracy` the share of its pairs whose preferred output has the higher implicit
reward (the validation counterpart of `reward_accuracy`).

Pairs are read and tokenized on each run (not cached like supervised files): a pair's two sides
are rendered from one conversation, and the reference pass costs more than the tokenizing.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase

from trainers.data import IGNORE_INDEX, Collator, TrainingData
from trainers.precision import device_type

__all__ = [
    "PairCollator",
    "PreferenceLoss",
    "add_reference_logps",
    "dpo_loss",
    "load_preference_data",
    "pair_sums",
    "sequence_logps",
]

REFERENCE = "reference_logps"  # the column, and the batch entry, of (preferred, non-preferred) log pi_ref
OTHER = "non_preferred_"  # prefix of the non-preferred side's columns


def load_preference_data(
    training_file: Path,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len: int,
    held_out_rows: Sequence[int] = (),
) -> TrainingData:
    """Tokenize a file of preference pairs (rows already validated by the control plane).

    Returns:
        One row per pair: `input_ids`, `labels`, `length` of the preferred side (what a replay
        buffer keeps of the job), and the same three prefixed `non_preferred_`. Pairs whose
        output a side loses entirely to `max_seq_len` are dropped and counted.
    """
    held_out = set(held_out_rows)
    pairs, dropped = [], 0
    lines = [line for line in training_file.read_text().splitlines() if line.strip()]
    for number, line in enumerate(lines):
        if number in held_out:
            continue
        row = json.loads(line)
        messages = row["input"]["messages"]
        preferred = _render(messages, row["preferred_output"][0], tokenizer, max_seq_len)
        other = _render(messages, row["non_preferred_output"][0], tokenizer, max_seq_len)
        if all(x == IGNORE_INDEX for x in preferred["labels"]) or all(
            x == IGNORE_INDEX for x in other["labels"]
        ):
            dropped += 1
            continue
        pairs.append({**preferred, **{OTHER + name: value for name, value in other.items()}})
    return TrainingData(rows=Dataset.from_list(pairs), dropped=dropped)


@torch.no_grad()
def add_reference_logps(
    data: TrainingData, model: nn.Module, collate: "PairCollator", batch_size: int, compute: torch.dtype
) -> TrainingData:
    """The pairs with their log pi_ref (preferred, non-preferred) under `model` as it is now.

    Call before any step, with the model as loaded from the parent. Every process scores every
    pair, so each holds the reference of whichever pairs its batches bring.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    reference: list[list[float]] = []
    for start in range(0, len(data.rows), batch_size):
        rows = [data.rows[i] for i in range(start, min(start + batch_size, len(data.rows)))]
        batch = {name: tensor.to(device) for name, tensor in collate(rows).items()}
        with torch.autocast(device_type(), dtype=compute, enabled=compute != torch.float32):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        reference += sequence_logps(logits, batch["labels"]).view(-1, 2).tolist()
    model.train(was_training)
    return TrainingData(rows=data.rows.add_column(REFERENCE, reference), dropped=data.dropped)


@dataclass(frozen=True)
class PairCollator:
    """Right-pads a batch of pairs, and any replayed rows, for one forward pass.

    Each pair becomes two sequences, preferred then non-preferred, ahead of the rows that are
    not pairs (rows a method replays); `reference_logps` (pairs, 2) holds the pairs' log pi_ref
    (zeros before `add_reference_logps`).

    Attributes:
        collate: Pads the sequences (`trainers.data.Collator`).
    """

    collate: Collator

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """`Collator`'s batch plus `reference_logps` (pairs, 2)."""
        pairs = [row for row in rows if OTHER + "input_ids" in row]
        sequences: list[dict[str, Any]] = []
        for pair in pairs:
            sequences.append({name: pair[name] for name in ("input_ids", "labels", "length")})
            sequences.append({name: pair[OTHER + name] for name in ("input_ids", "labels", "length")})
        batch = self.collate(sequences + [row for row in rows if OTHER + "input_ids" not in row])
        batch[REFERENCE] = torch.tensor(
            [pair.get(REFERENCE) or [0.0, 0.0] for pair in pairs], dtype=torch.float32
        ).view(-1, 2)  # (pairs, 2)
        return batch


@dataclass
class PreferenceLoss:
    """A dpo job's loss on a `PairCollator` batch: DPO on its pairs plus the token cross-entropy
    of its replayed rows. Keeps the implicit rewards' accuracy and margin since the last `rewards`.

    Attributes:
        beta: The job's beta.
        sums: (3,) float64 on the job's device: pairs whose preferred output had the higher
            reward, summed reward margins, pairs; since the last `rewards`.
    """

    beta: float
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))

    def __call__(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss (a scalar) of the batch, given the model's logits (batch, seq, vocab) on it."""
        reference = batch[REFERENCE]  # (pairs, 2)
        n = 2 * len(reference)
        policy = sequence_logps(logits[:n], batch["labels"][:n]).view(-1, 2)  # (pairs, 2)
        if len(reference):
            loss, rewards = dpo_loss(policy, reference, self.beta)
            margins = (rewards[:, 0] - rewards[:, 1]).detach().double()  # (pairs,)
            counts = torch.stack(
                [(margins > 0).sum().double(), margins.sum(), margins.new_tensor(len(margins))]
            )
            self.sums += counts.to(self.sums.device)
        else:
            loss = logits.sum() * 0.0  # this process has no pair in the step's batch
        replayed = batch["replayed"]  # (batch,)
        if replayed.any():
            loss = loss + F.cross_entropy(
                logits[replayed][:, :-1].float().transpose(1, 2),
                batch["labels"][replayed][:, 1:],
                ignore_index=IGNORE_INDEX,
            )
        return loss

    def rewards(self, sums: torch.Tensor | None = None) -> dict[str, float]:
        """`reward_accuracy` (the share of pairs whose preferred output had the higher implicit
        reward) and `reward_margin` (the mean margin of those rewards) since the last call; then
        starts over.

        Args:
            sums: `self.sums` added over the processes (default: this process's alone).
        """
        correct, margin, pairs = (self.sums if sums is None else sums).tolist()
        self.sums = torch.zeros_like(self.sums)
        return {"reward_accuracy": correct / max(pairs, 1), "reward_margin": margin / max(pairs, 1)}


def pair_sums(logits: torch.Tensor, batch: dict[str, torch.Tensor], beta: float) -> torch.Tensor:
    """A batch of pairs' (3,) float64 sums for `trainers.validation.Scores`: summed DPO loss, pairs
    whose preferred output has the higher implicit reward, pairs.

    Args:
        logits: (2 * pairs, seq, vocab), the model's on a `PairCollator` batch of pairs alone.
        batch: That batch, with its pairs' `reference_logps`.
        beta: The job's beta.
    """
    policy = sequence_logps(logits, batch["labels"]).view(-1, 2)  # (pairs, 2)
    loss, rewards = dpo_loss(policy, batch[REFERENCE], beta)
    pairs = len(policy)
    right = (rewards[:, 0] > rewards[:, 1]).sum()
    return torch.stack([loss.double() * pairs, right.double(), loss.new_tensor(pairs).double()])


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's summed log-probability of its loss tokens.

    Args:
        logits: (rows, seq, vocab).
        labels: (rows, seq), IGNORE_INDEX where no loss (position t predicts label t + 1).

    Returns:
        (rows,) float32.
    """
    nll = F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )  # (rows, seq - 1); zero where ignored
    return -nll.sum(dim=1)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's loss over pairs, and the implicit rewards beta * (log pi - log pi_ref).

    Args:
        policy: (pairs, 2) log pi of the preferred and the non-preferred output.
        reference: (pairs, 2) log pi_ref of the same, a constant.
        beta: How strongly the loss keeps pi near pi_ref.

    Returns:
        The mean loss (a scalar) and the rewards (pairs, 2).
    """
    rewards = beta * (policy - reference.detach())  # (pairs, 2)
    return -F.logsigmoid(rewards[:, 0] - rewards[:, 1]).mean(), rewards


def _render(
    messages: list[dict[str, Any]],
    output: dict[str, str],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_len: int,
) -> dict[str, Any]:
    """The conversation plus one output, loss on the output's tokens (with the end of turn the
    template writes after it), truncated to `max_seq_len`.

    As `trainers.data` renders chat rows: the output's tokens are those starting after the
    rendering of the conversation with the generation prompt.
    """
    chat = [{"role": m["role"], "content": m["content"]} for m in messages]
    start = len(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True))
    text = tokenizer.apply_chat_template(
        [*chat, {"role": "assistant", "content": output["content"]}], tokenize=False
    )
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoding["input_ids"][:max_seq_len]
    labels = [
        token if offset >= start else IGNORE_INDEX
        for token, (offset, _) in zip(input_ids, encoding["offset_mapping"], strict=False)
    ]
    return {"input_ids": input_ids, "labels": labels, "length": len(input_ids)}

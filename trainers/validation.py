"""Loss and accuracy of a job's model on rows it does not train on (its validation file).

OpenAI's fine-tuning metrics: `valid_loss` and `valid_mean_token_accuracy` on one batch of the
validation file at each metrics step, `full_valid_loss` and `full_valid_mean_token_accuracy` on
the whole file at the end. For a supervised job the loss is per loss token and the accuracy the
share of loss tokens whose label is the model's top prediction; for a dpo job both are per
preference pair (`trainers.preference.pair_sums`). Every process scores its share of the rows;
the sums are added over processes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator
from datasets import Dataset

from trainers.data import IGNORE_INDEX, BatchOrder
from trainers.precision import device_type

__all__ = ["Scores", "Validation", "batch_token_sums", "token_sums"]


@dataclass(frozen=True)
class Scores:
    """Mean loss per scored unit and the share of units the model gets right: loss tokens (the
    top prediction is the label) or preference pairs (the preferred output has the higher reward)."""

    loss: float
    accuracy: float

    @classmethod
    def from_sums(cls, sums: torch.Tensor) -> "Scores":
        """From (3,) sums added over batches and processes: (loss sum, units right, units)."""
        loss, correct, units = sums.tolist()
        return cls(loss=loss / max(units, 1), accuracy=correct / max(units, 1))


def token_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(3,) float64: summed next-token cross-entropy, correct top predictions and loss tokens.

    Args:
        logits: (batch, seq, vocab), as the model returned them.
        labels: (batch, seq), IGNORE_INDEX where no loss (the same shift as Hugging Face's loss).
    """
    logits, labels = logits[:, :-1].float(), labels[:, 1:]  # (batch, seq - 1, vocab), (batch, seq - 1)
    mask = labels != IGNORE_INDEX  # (batch, seq - 1)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    correct = ((logits.argmax(dim=-1) == labels) & mask).sum()
    return torch.stack([loss.double(), correct.double(), mask.sum().double()])


def batch_token_sums(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`token_sums` of a collated batch (`trainers.data.Collator`)."""
    return token_sums(logits, batch["labels"])


class Validation:
    """Scores a model on a job's validation rows, with no gradients.

    Args:
        rows: Tokenized validation rows (`trainers.data.load_training_data`, or a dpo job's pairs
            with their reference log-probabilities, `trainers.preference.add_reference_logps`).
        batch_size: Rows per batch, over all processes (the job's batch size).
        seed: Fixes which rows form the batch scored at each step.
        collate: The job's collator (of a dpo job, its `PairCollator`).
        accelerator: The job's accelerator (process rank, count, device, reduction).
        compute: The compute dtype of forward passes.
        sums: A batch's (3,) float64 sums (loss, units right, units), given the model's logits
            (batch, seq, vocab) on it and the collated batch (of a dpo job, `pair_sums`).
    """

    def __init__(
        self,
        rows: Dataset,
        batch_size: int,
        seed: int,
        collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
        accelerator: Accelerator,
        compute: torch.dtype,
        sums: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor] = batch_token_sums,
    ) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.order = BatchOrder(len(rows), batch_size, seed)
        self.collate = collate
        self.accelerator = accelerator
        self.compute = compute
        self.sums = sums

    def batch_scores(self, model: Callable[..., Any], step: int) -> Scores:
        """The scores of the validation batch of `step` (the same batch whenever `step` comes back)."""
        return self._scores(model, [self.order.batch(step)])

    def full_scores(self, model: Callable[..., Any]) -> Scores:
        """The scores over every validation row."""
        starts = range(0, len(self.rows), self.batch_size)
        return self._scores(model, [list(range(i, min(i + self.batch_size, len(self.rows)))) for i in starts])

    @torch.no_grad()
    def _scores(self, model: Callable[..., Any], batches: list[list[int]]) -> Scores:
        accelerator = self.accelerator
        sums = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
        for batch_rows in batches:
            mine = batch_rows[accelerator.process_index :: accelerator.num_processes]
            if not mine:
                continue
            collated = self.collate([self.rows[i] for i in mine]).items()
            batch = {name: tensor.to(accelerator.device) for name, tensor in collated}
            with torch.autocast(device_type(), dtype=self.compute, enabled=self.compute != torch.float32):
                outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            sums += self.sums(outputs.logits, batch)
        return Scores.from_sums(accelerator.reduce(sums, "sum"))

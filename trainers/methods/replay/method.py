"""LoRA with experience replay: every batch after the first job mixes in rows of earlier jobs.

Per step, on new rows plus replayed rows of earlier jobs:

    loss = CE(batch) + distill_weight * KL(p_parent(x_r) || p(x_r))    (replayed rows, loss tokens)

where p_parent is the adapter as the job started (the parent version); with the default
`distill_weight = 0` it is plain experience replay.
"""

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from memory.replay import ReplayBuffer, ReplayItem
from trainers.data import Collator
from trainers.methods.distillation import distillation_loss, teacher_logits
from trainers.methods.lora.method import LoraMethod
from trainers.methods.replay.config import ReplayConfig

__all__ = ["ReplayMethod"]


class ReplayMethod(LoraMethod):
    """Sequential LoRA (the adapter continues from the parent's) plus a replay buffer.

    The buffer comes from the parent version's `memory/` (a fresh one for the first job). At the
    job's start its rows are offered to the buffer; each step then adds
    `round(replay_ratio * batch_size)` rows drawn from earlier jobs' rows, so the first job
    replays nothing. The buffer is saved in every checkpoint and in the version's `memory/`.
    With `distill_weight > 0` the replayed rows are also pulled towards the parent's next-token
    distributions: the parent's adapter is kept as tensors from `prepare_model` on (a resumed run
    takes them from the parent again, so they need no place in `memory/`).

    Knobs (`ReplayConfig`): LoRA's, plus `replay_ratio`, `buffer_size`, `job_quota`, `priority`,
    `distill_weight`.
    """

    def __init__(self, config: ReplayConfig) -> None:
        super().__init__(config)
        self.config: ReplayConfig = config
        self.buffer = ReplayBuffer(config.buffer_size, 0, config.job_quota, config.priority)  # type: ignore[arg-type]
        self.job_id = ""
        self.model: PeftModel | None = None
        self.teacher: dict[str, torch.Tensor] = {}  # the parent's adapter, with distill_weight > 0

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> PeftModel:
        """LoRA's adapter (fresh or the parent's), and the parent's buffer; with distillation, the
        adapter's tensors as they are now (the teacher)."""
        self.model = super().prepare_model(base_model, parent_dir)
        if parent_dir is not None:
            self.buffer = ReplayBuffer.load(parent_dir / "memory")
        if self.config.distill_weight > 0:
            self.teacher = {
                name: p.detach().clone() for name, p in self.model.named_parameters() if p.requires_grad
            }
        return self.model

    def start_job(self, job_id: str, rows: Dataset, seed: int) -> None:
        """Offer the job's rows to the buffer (with their surprise in surprise mode)."""
        self.job_id = job_id
        if not self.buffer.seen_per_job:
            self.buffer.seed = seed  # a lineage's buffer is seeded by its first job
        surprises = self._surprise(rows) if self.config.priority == "surprise" else [0.0] * len(rows)
        for row, surprise in zip(rows, surprises, strict=True):
            self.buffer.add(ReplayItem(row["input_ids"], row["labels"], job_id, surprise))

    def replay_rows(self, step: int, batch_size: int) -> list[dict[str, Any]]:
        """Rows of earlier jobs to add to the batch of `step`: the same on a resumed run."""
        n = round(self.config.replay_ratio * batch_size)
        items = self.buffer.sample(n, key=f"{self.job_id}:{step}", exclude_job=self.job_id)
        return [
            {
                "input_ids": item.input_ids,
                "labels": item.labels,
                "length": len(item.input_ids),
                "replayed": True,
            }
            for item in items
        ]

    def training_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast
    ) -> torch.Tensor:
        """The objective's loss, plus `distill_weight` times the KL to the parent on replayed rows."""
        loss, logits = outputs.loss, outputs.logits  # logits: (batch, seq, vocab)
        assert loss is not None
        replayed = batch["replayed"]  # (batch,) bool
        if self.config.distill_weight == 0 or not replayed.any():
            return loss
        assert logits is not None and self.model is not None
        # Snapshot on the CPU; the loop moves the model to its device after `prepare_model`
        # (`.to` returns a tensor already there as it is).
        self.teacher = {name: t.to(logits.device) for name, t in self.teacher.items()}
        rows = {name: batch[name][replayed] for name in ("input_ids", "attention_mask", "labels")}
        parent = teacher_logits(self.model, self.teacher, rows["input_ids"], rows["attention_mask"])
        distillation = distillation_loss(logits[replayed], parent, rows["labels"])
        return loss + self.config.distill_weight * distillation

    def save_memory(self, memory_dir: Path) -> None:
        """Write the buffer (`replay.json`)."""
        self.buffer.save(memory_dir)

    def load_memory(self, memory_dir: Path) -> None:
        """Restore the buffer of a checkpoint."""
        self.buffer = ReplayBuffer.load(memory_dir)

    @torch.no_grad()
    def _surprise(self, rows: Dataset, chunk: int = 16) -> list[float]:
        """Mean token NLL of each row under the model as the job starts (the parent's)."""
        assert self.model is not None
        collate = Collator(pad_token_id=0)  # padding is masked out and carries no loss
        result: list[float] = []
        for start in range(0, len(rows), chunk):
            batch = collate([rows[i] for i in range(start, min(start + chunk, len(rows)))])
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]  # (rows, seq - 1)
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="none"
            )  # (rows, seq - 1)
            counts = (labels != -100).sum(dim=1).clamp(min=1)  # (rows,)
            result += (nll.sum(dim=1) / counts).tolist()
        return result

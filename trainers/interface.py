"""The hooks the shared training loop calls: what a continual-learning method implements.

A method class is built as `MethodClass(config)` from its config dataclass (see
`trainers.contracts.methods`). The loop, per job (`trainers.loop.run_job`):

1. `prepare_model(base_model, parent_dir)` once; the loop trains the parameters that have
   `requires_grad` set;
2. `start_job(job_id, rows, seed)` once the training rows are tokenized (e.g. to offer them to
   a replay buffer); before a resume, so a resumed job starts as the uninterrupted one did;
3. `load_memory(checkpoint/memory)` when it resumes from a checkpoint;
4. per step: the batch's rows plus `replay_rows(step, batch_size)` (marked `replayed`) are
   collated, `outputs = model(input_ids, attention_mask, labels, output_hidden_states=True)`,
   `loss = training_loss(model, batch, outputs)`, backward, optimizer step,
   `after_optimizer_step(model, step)`;
5. every `continual_eval_every` steps, when earlier jobs left probes, the continual evaluator
   scores them and passes the result to `after_evaluation(step, evaluation)` (e.g. for a
   controller that reacts to forgetting), whose returned settings are reported with it;
6. `save_memory(checkpoint/memory)` in every checkpoint;
7. at the end `export_adapter(model, output_dir/adapter)` and `save_memory(output_dir/memory)`.
"""

from pathlib import Path
from typing import Any, Protocol

import torch
from datasets import Dataset
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from trainers.contracts.lines import ContinualEvaluation

__all__ = ["ContinualMethod", "TrainingConfig"]


class TrainingConfig(Protocol):
    """Fields of every method config that the shared loop reads."""

    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float
    max_seq_len: int


class ContinualMethod(Protocol):
    """A continual-learning method: adapter setup, loss terms and work at job boundaries."""

    config: TrainingConfig

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> nn.Module:
        """Attach the method's trainable modules to a frozen base model.

        Args:
            base_model: The lineage's base model, fp32, every parameter frozen or not yet.
            parent_dir: The parent version's folder (`adapter/`, `memory/`), or None for the
                first job of a lineage.

        Returns:
            The model to train; only its parameters with `requires_grad` are optimized.
        """
        ...

    def start_job(self, job_id: str, rows: Dataset, seed: int) -> None:
        """The job's tokenized rows are ready (called before any resume and any step).

        Args:
            job_id: The fine-tuning job.
            rows: Its rows: `input_ids`, `labels`, `length` (of a `dpo` job, its pairs: those
                are the preferred side, and the other side's columns start `non_preferred_`).
            seed: The job's seed.
        """
        ...

    def replay_rows(self, step: int, batch_size: int) -> list[dict[str, Any]]:
        """Rows of earlier jobs to add to the batch of `step` (counting from 0).

        Must depend only on the method's memory and `step`, so a resumed job replays the same.

        Returns:
            Rows like the training rows (`input_ids`, `labels`, `length`), possibly none.
        """
        ...

    def training_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast
    ) -> torch.Tensor:
        """The loss to minimise for one batch, given the model's outputs on it.

        Args:
            model: The (possibly engine-wrapped) model, for any extra forward passes.
            batch: `input_ids`, `attention_mask` and `labels`, each (batch, seq), and
                `replayed` (batch,): True on the rows `replay_rows` added. In a `dpo` job the
                rows that are not replayed come in pairs, preferred then non-preferred.
            outputs: The model's outputs on the batch, with `hidden_states`; `outputs.loss` is
                the job objective's loss: the token cross-entropy over all rows, replayed ones
                included (`supervised`), or the DPO loss of the batch's pairs plus the token
                cross-entropy of its replayed rows (`dpo`; `trainers.preference`).

        Returns:
            A scalar tensor.
        """
        ...

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Work after each optimizer step (e.g. an EMA update); `step` counts from 1."""
        ...

    def after_evaluation(self, step: int, evaluation: ContinualEvaluation) -> dict[str, float]:
        """React to a continual evaluation of earlier jobs' probes (e.g. raise replay on forgetting).

        Returns:
            The settings the method changed in response, by name (reported with the evaluation
            as a `metrics` event); empty when it does not react.
        """
        ...

    def save_memory(self, memory_dir: Path) -> None:
        """Write the state the method carries to the next version or a resumed run."""
        ...

    def load_memory(self, memory_dir: Path) -> None:
        """Restore what `save_memory` wrote (used when resuming from a checkpoint)."""
        ...

    def export_adapter(self, model: nn.Module, adapter_dir: Path) -> None:
        """Write the servable PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`)."""
        ...

"""LoRA with online EWC (Kirkpatrick et al., arXiv 1612.00796; Schwarz et al., arXiv 1805.06370).

Sequential LoRA, as `lora` (the adapter continues from the parent's), with, per step,

    loss = CE(batch) + ewc_weight / 2 * sum_i F_i (theta_i - theta*_i)^2    (trainable LoRA weights)

where theta* is the adapter as the job started (the parent's) and F the lineage's accumulated
diagonal Fisher (`memory.fisher.ParameterAnchor`). At the job's end, the loop's one call to
`export_adapter`, the job's own Fisher F_job is estimated at the end parameters and folded in,
`F <- fisher_decay * F + F_job`, and the end parameters become the next job's theta*.

F_job is the per-token empirical Fisher: over `fisher_rows` of the job's rows, in batches of
`FISHER_BATCH_ROWS`, the squared gradient of a batch's summed token NLL divided by its loss
tokens, averaged over batches. That is `n * g^2` for the gradient g of the batch's mean token
loss over n tokens: at the end of a job, where the mean gradient is small beside each token's,
its expectation is the mean over tokens of the squared per-token gradient, whatever the batch
size, so F and `ewc_weight` are in the units of the mean token loss (`config.py`).

`memory/ewc.safetensors` holds the anchor and Fisher that the next training step is penalised
with: in a checkpoint, this job's (theta* = the parent's, F as the job started); in a version,
the next job's.
"""

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from memory.fisher import ParameterAnchor
from trainers.data import Collator
from trainers.methods.ewc.config import EwcConfig
from trainers.methods.lora.method import LoraMethod

__all__ = ["EwcMethod", "job_fisher"]

FISHER_BATCH_ROWS = 4  # rows per gradient of the Fisher estimate


class EwcMethod(LoraMethod):
    """Sequential LoRA held near the parent's adapter by the lineage's Fisher.

    Knobs (`EwcConfig`): LoRA's, plus `ewc_weight`, `fisher_decay` and `fisher_rows`.
    """

    def __init__(self, config: EwcConfig) -> None:
        super().__init__(config)
        self.config: EwcConfig = config
        self.model: PeftModel | None = None
        self.anchor: ParameterAnchor | None = None  # this job's theta* and F
        self.next_anchor: ParameterAnchor | None = None  # the next job's, once this one has ended
        self.fisher_sample: list[dict[str, Any]] = []

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> PeftModel:
        """LoRA's adapter (fresh or the parent's) and the parent's anchor (a first job's holds nothing)."""
        self.model = super().prepare_model(base_model, parent_dir)
        self.anchor = (
            ParameterAnchor.load(parent_dir / "memory")
            if parent_dir is not None
            else ParameterAnchor.fresh(_trainable(self.model))
        )
        return self.model

    def start_job(self, job_id: str, rows: Dataset, seed: int) -> None:
        """Draw the rows whose gradients will estimate the job's Fisher at its end."""
        chosen = sorted(random.Random(seed).sample(range(len(rows)), min(self.config.fisher_rows, len(rows))))
        self.fisher_sample = [
            {"input_ids": rows[i]["input_ids"], "labels": rows[i]["labels"], "length": rows[i]["length"]}
            for i in chosen
        ]

    def training_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast
    ) -> torch.Tensor:
        """The token cross-entropy plus `ewc_weight / 2` times the Fisher-weighted distance to theta*."""
        loss = outputs.loss
        assert loss is not None and self.model is not None and self.anchor is not None
        # Loaded on the CPU; the loop moves the model to its device after `prepare_model`.
        self.anchor = self.anchor.to(loss.device)
        penalty = self.anchor.penalty(dict(self.model.named_parameters()))
        return loss + self.config.ewc_weight / 2 * penalty

    def save_memory(self, memory_dir: Path) -> None:
        """Write the anchor and Fisher (`ewc.safetensors`): the next job's once this one has ended."""
        assert self.anchor is not None
        (self.next_anchor or self.anchor).save(memory_dir)

    def load_memory(self, memory_dir: Path) -> None:
        """Restore the anchor and Fisher of a checkpoint (this job's)."""
        self.anchor = ParameterAnchor.load(memory_dir)
        self.next_anchor = None

    def export_adapter(self, model: PeftModel, adapter_dir: Path) -> None:
        """Save the adapter, as `lora`; this being the job's end, also fold its Fisher into the lineage's."""
        assert self.anchor is not None
        super().export_adapter(model, adapter_dir)
        parameters = _trainable(model)
        fisher = job_fisher(model, parameters, self.fisher_sample)
        self.next_anchor = self.anchor.consolidated(parameters, fisher, self.config.fisher_decay)


def job_fisher(
    model: nn.Module, parameters: dict[str, torch.Tensor], rows: list[dict[str, Any]]
) -> dict[str, torch.Tensor]:
    """The per-token empirical Fisher diagonal of `parameters` on `rows` (module docstring).

    The gradients are taken of copies of `parameters` swapped in by `torch.func.functional_call`:
    the model's own parameters, their `.grad` and any hooks on them (DeepSpeed's) stay untouched.

    Args:
        model: The model being trained, unwrapped.
        parameters: Its trainable parameters by name.
        rows: Rows with `input_ids`, `labels` and `length`.

    Returns:
        One tensor per parameter, shaped as it; zeros when `rows` is empty.
    """
    copies = {name: p.detach().clone().requires_grad_() for name, p in parameters.items()}
    fisher = {name: torch.zeros_like(p) for name, p in copies.items()}
    batches = [rows[i : i + FISHER_BATCH_ROWS] for i in range(0, len(rows), FISHER_BATCH_ROWS)]
    collate = Collator(pad_token_id=0)  # padding is masked out and carries no loss
    device = next(iter(copies.values())).device
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it is served
    for chunk in batches:
        batch = {name: t.to(device) for name, t in collate(chunk).items()}
        logits = torch.func.functional_call(
            model,
            copies,
            args=(),
            kwargs={"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]},
            strict=False,
        ).logits  # (rows, seq, vocab)
        targets = batch["labels"][:, 1:]  # (rows, seq - 1)
        nll = F.cross_entropy(
            logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=-100, reduction="sum"
        )
        tokens = (targets != -100).sum().clamp(min=1)
        gradients = torch.autograd.grad(nll, list(copies.values()))
        for total, gradient in zip(fisher.values(), gradients, strict=True):
            total += gradient**2 / tokens / len(batches)
    model.train(was_training)
    return fisher


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}

"""TRC² adapters (Khadangi, arXiv 2602.22479) as a continual-learning method (docs/methods.md).

Per step, on new rows plus rows of earlier jobs replayed from the hippocampal store:

    loss = CE(batch) + distill_weight * KL(p_parent(x_r) || p(x_r))    (replayed rows, loss tokens)
         + balance_weight * mean_layers L_bal + z_weight * mean_layers L_z

where p_parent is the parent version as published (before this job's consolidation). During the
forward pass the new rows that are surprising (z-score of their NLL above `write_threshold`, or
among the batch's top `write_top_fraction`) are stashed for the store; `after_optimizer_step`
commits them. At a job boundary the stable columns absorb `consolidation_rate` of the plastic
columns, weighted by how much the router used each. `after_evaluation` feeds measured
forgetting to the PI controller, which sets the replay ratio, the distillation weight and the
consolidation rate.
"""

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from memory.hippocampus import Episode, Hippocampus
from trainers.contracts.lines import ContinualEvaluation
from trainers.methods.distillation import distillation_loss, teacher_logits
from trainers.methods.trc.config import TrcConfig
from trainers.methods.trc.controller import ReplayController
from trainers.methods.trc.model import (
    COLUMNS_FILE,
    Cortex,
    attach,
    consolidate,
    export_peft_adapter,
    load_columns,
    save_columns,
    trc_tensors,
)

__all__ = ["TrcMethod"]

STATE_FILE = "trc.json"  # controller state and routing usage, under memory/


class TrcMethod:
    """Routed plastic columns, a consolidated stable column, a hippocampal store and a replay controller.

    Knobs (`TrcConfig`): LoRA's, plus the columns and router, the store and its writes, and the
    controller's starting values, bounds and gains; `router`, `hippocampus` and `controller`
    switch each part off for ablations.
    """

    def __init__(self, config: TrcConfig) -> None:
        self.config = config
        self.controller = ReplayController(config)
        self.store: Hippocampus | None = None
        self.cortex: Cortex | None = None
        self.model: PreTrainedModel | None = None
        self.teacher: dict[str, torch.Tensor] = {}  # the parent's TRC² tensors, before consolidation
        self.usage = torch.zeros(0)  # (layers, columns): summed gates over the job's real tokens
        self.usage_tokens = 0.0
        self.job_id = ""

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> PreTrainedModel:
        """Attach fresh modules, or the parent's, consolidated at this job boundary."""
        config = self.config
        if config.hippocampus:
            hidden = base_model.config.hidden_size
            self.store = (
                Hippocampus.load(parent_dir / "memory")
                if parent_dir is not None
                else Hippocampus(
                    config.memory_size, hidden, hidden, config.memory_job_quota, config.memory_age_scale
                )
            )
        self.cortex = attach(base_model, config, self.store)
        self.usage = torch.zeros(len(self.cortex.routers), config.columns)
        if parent_dir is not None:
            load_columns(base_model, parent_dir / "memory" / COLUMNS_FILE)
            self._load_state(parent_dir / "memory")
        # The teacher is the parent as it was published: consolidation's change of function is
        # one the distillation undoes where replayed rows show it.
        self.teacher = {name: tensor.detach().clone() for name, tensor in trc_tensors(base_model).items()}
        if parent_dir is not None:
            consolidate(self.cortex, self._mean_usage(), self.controller.state.consolidation_rate)
            self.usage, self.usage_tokens = torch.zeros_like(self.usage), 0.0
        self.model = base_model
        return base_model

    def start_job(self, job_id: str, rows: Dataset, seed: int) -> None:
        """Remember the job (its rows reach the store through surprise-gated writes)."""
        self.job_id = job_id
        if self.store is not None and not self.store.jobs:
            self.store.seed = seed  # a lineage's store is seeded by its first job

    def replay_rows(self, step: int, batch_size: int) -> list[dict[str, Any]]:
        """`round(replay_ratio * batch_size)` rows of earlier jobs, drawn by priority from the store."""
        if self.store is None:
            return []
        n = round(self.controller.state.replay_ratio * batch_size)
        episodes = self.store.sample(n, key=f"{self.job_id}:{step}", exclude_job=self.job_id)
        return [
            {"input_ids": e.input_ids, "labels": e.labels, "length": len(e.input_ids), "replayed": True}
            for e in episodes
        ]

    def training_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast
    ) -> torch.Tensor:
        """Cross-entropy, router losses and distillation on replayed rows; stashes the surprising rows."""
        assert self.cortex is not None
        config = self.config
        mask = batch["attention_mask"]  # (batch, seq)
        loss = outputs.loss
        self._count_usage(mask)
        if config.router:
            balance, z = zip(*(router.auxiliary_losses(mask) for router in self.cortex.routers), strict=True)
            loss = (
                loss
                + config.balance_weight * torch.stack(balance).mean()
                + config.z_weight * torch.stack(z).mean()
            )
        if self.store is None:
            return loss
        replayed = batch["replayed"]  # (batch,)
        # The routers' slots still hold this batch's gates; the teacher's forward below replaces them.
        self._stash_surprising(batch, outputs, ~replayed)
        weight = self.controller.state.distill_weight
        if replayed.any() and weight > 0:
            rows = {name: batch[name][replayed] for name in ("input_ids", "attention_mask", "labels")}
            loss = loss + weight * distillation_loss(
                outputs.logits[replayed], self._teacher_logits(rows), rows["labels"]
            )
        return loss

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Commit the step's stashed writes: from the next step on, reads and replay see them."""
        if self.store is not None:
            self.store.commit()

    def after_evaluation(self, step: int, evaluation: ContinualEvaluation) -> dict[str, float]:
        """Feed the measured forgetting to the controller; its new settings apply from the next step.

        The evaluation at step 0 is the job's reference: its forgetting is zero by definition, not
        a measurement, so the settings the parent's job ended with carry on until the next one.

        Returns:
            The controller's settings after the update (nothing with `controller=False`).
        """
        if not self.config.controller:
            return {}
        if step > 0:
            self.controller.update(evaluation.forgetting)
        return self.controller.to_dict()

    def save_memory(self, memory_dir: Path) -> None:
        """Write the columns (`columns.safetensors`), controller and usage (`trc.json`), and the store."""
        assert self.model is not None
        save_columns(self.model, memory_dir / COLUMNS_FILE)
        state = {
            "controller": self.controller.to_dict(),
            "usage": self.usage.tolist(),
            "usage_tokens": self.usage_tokens,
        }
        (memory_dir / STATE_FILE).write_text(json.dumps(state))
        if self.store is not None:
            self.store.save(memory_dir)

    def load_memory(self, memory_dir: Path) -> None:
        """Restore the stable columns, controller, usage and store of a checkpoint (it holds the rest)."""
        assert self.model is not None and self.cortex is not None
        load_columns(self.model, memory_dir / COLUMNS_FILE, stable_only=True)
        self._load_state(memory_dir)
        if self.store is not None:
            self.store = Hippocampus.load(memory_dir)
            assert self.cortex.read is not None
            self.cortex.read.store = self.store

    def export_adapter(self, model: nn.Module, adapter_dir: Path) -> None:
        """The stable plus usage-weighted plastic columns as a plain PEFT LoRA adapter (rank `r`)."""
        assert self.model is not None and self.cortex is not None
        export_peft_adapter(self.model, self.cortex, self._mean_usage(), self.config, adapter_dir)

    def _load_state(self, memory_dir: Path) -> None:
        state = json.loads((memory_dir / STATE_FILE).read_text())
        self.controller.load_dict(state["controller"])
        self.usage, self.usage_tokens = torch.tensor(state["usage"]), state["usage_tokens"]

    def _mean_usage(self) -> torch.Tensor:
        """(layers, columns): mean gate per column over the job; uniform before any step."""
        if self.usage_tokens == 0:
            return torch.full_like(self.usage, 1 / self.config.columns)
        return self.usage / self.usage_tokens

    @torch.no_grad()
    def _count_usage(self, mask: torch.Tensor) -> None:
        assert self.cortex is not None
        weights = mask.unsqueeze(-1).float()  # (batch, seq, 1)
        for i, router in enumerate(self.cortex.routers):
            assert router.slot.gates is not None
            self.usage[i] += (router.slot.gates.float() * weights).sum((0, 1)).cpu()
        self.usage_tokens += mask.sum().item()

    @torch.no_grad()
    def _stash_surprising(
        self, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast, new: torch.Tensor
    ) -> None:
        """Stash the new rows whose surprise passes the write rule, keyed at the injection layer."""
        assert self.store is not None and self.cortex is not None
        if not new.any():
            return
        labels = batch["labels"][new]  # (rows, seq)
        nll = _row_nll(outputs.logits[new], labels)  # (rows,)
        surprise = self.store.surprise(nll.cpu())  # (rows,)
        top = math.ceil(self.config.write_top_fraction * len(nll))
        chosen = surprise > self.config.write_threshold
        chosen[surprise.argsort(descending=True)[:top]] = True
        mask = batch["attention_mask"][new].unsqueeze(-1).float()  # (rows, seq, 1)
        pooled = {
            "key": outputs.hidden_states[self.cortex.injection_layer][new],  # (rows, seq, hidden)
            "value": outputs.hidden_states[-1][new],
        }
        pooled = {name: ((h * mask).sum(1) / mask.sum(1)).float().cpu() for name, h in pooled.items()}
        keys = F.normalize(pooled["key"], dim=-1)  # (rows, hidden)
        lengths = batch["attention_mask"][new].sum(1).tolist()
        input_ids = batch["input_ids"][new]
        episodes = [
            Episode(
                input_ids[i, : lengths[i]].tolist(),
                labels[i, : lengths[i]].tolist(),
                self.job_id,
                nll[i].item(),
                keys[i],
                pooled["value"][i],
            )
            for i in chosen.nonzero().flatten().tolist()
        ]
        self.store.stash(episodes, nll.tolist())

    def _teacher_logits(self, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the parent version (its TRC² tensors swapped in), no gradient."""
        assert self.model is not None
        return teacher_logits(self.model, self.teacher, rows["input_ids"], rows["attention_mask"])


def _row_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(rows, seq, vocab), (rows, seq) -> (rows,) mean token NLL over each row's loss tokens."""
    targets = labels[:, 1:]  # (rows, seq - 1)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return nll.sum(1) / (targets != -100).sum(1).clamp(min=1)

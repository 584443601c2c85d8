"""Plain sequential LoRA: each version continues training the parent version's adapter."""

from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from trainers.contracts.lines import ContinualEvaluation
from trainers.methods.lora.config import LoraConfig

__all__ = ["LoraMethod"]


class LoraMethod:
    """LoRA on a frozen base model, with no memory beyond the adapter itself.

    Knobs (`LoraConfig`): `r`, `alpha`, `dropout` and `target_modules` shape the adapter;
    the loop reads the optimization fields.
    """

    def __init__(self, config: LoraConfig) -> None:
        self.config = config

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> PeftModel:
        """A fresh adapter for the first version, else the parent's adapter, trainable."""
        if parent_dir is not None:
            return PeftModel.from_pretrained(base_model, parent_dir / "adapter", is_trainable=True)
        peft_config = PeftLoraConfig(
            r=self.config.r,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=_target_modules(base_model, self.config.target_modules),
            task_type="CAUSAL_LM",
        )
        return get_peft_model(base_model, peft_config)

    def start_job(self, job_id: str, rows: Dataset, seed: int) -> None:
        """Nothing: plain LoRA keeps no memory of the rows it trained on."""

    def replay_rows(self, step: int, batch_size: int) -> list[dict[str, Any]]:
        """None: plain LoRA replays nothing."""
        return []

    def training_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast
    ) -> torch.Tensor:
        """The token cross-entropy alone."""
        return outputs.loss

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """Nothing: plain LoRA keeps no state besides its weights."""

    def after_evaluation(self, step: int, evaluation: ContinualEvaluation) -> dict[str, float]:
        """Nothing: plain LoRA does not react to forgetting."""
        return {}

    def save_memory(self, memory_dir: Path) -> None:
        """Nothing to write: `memory/` stays empty for LoRA."""

    def load_memory(self, memory_dir: Path) -> None:
        """Nothing to read."""

    def export_adapter(self, model: PeftModel, adapter_dir: Path) -> None:
        """Save the adapter in PEFT format, as vLLM and `PeftModel.from_pretrained` load it."""
        model.save_pretrained(adapter_dir)


def _target_modules(base_model: PreTrainedModel, target_modules: str | list[str]) -> list[str]:
    """Module names to adapt; "all-linear" means every linear layer but the output head.

    Resolved here to short names (`q_proj`, `up_proj`, ...) because peft would record full
    paths (`model.layers.0.mlp.up_proj`) in `adapter_config.json`; short names are the plain
    form that vLLM and other LoRA loaders expect.
    """
    if target_modules != "all-linear":
        return list(target_modules)
    output_head = base_model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in base_model.named_modules()
            if isinstance(module, nn.Linear) and module is not output_head
        }
    )

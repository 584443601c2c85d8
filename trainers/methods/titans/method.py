"""Titans as a continual-learning method: a neural long-term memory on a frozen base, with replay.

The model is the base causal LM with memory branches on some decoder layers (`layer.py`). The
memory writes itself at test time (each sequence is written chunk by chunk as it is read); what
a job trains are its outer parameters: the key, value and query projections, the step-size,
momentum and decay gates, the initial memory weights, the output projections and the
zero-initialised gates (plus a LoRA adapter on the base with `base_lora`). Per step:

    loss = CE(batch)    (new rows plus replayed rows of earlier jobs, as the replay method)

Those outer parameters are adapter weights like any other and would drift to the newest job, so
earlier jobs are protected by the lineage's replay buffer (docs/methods.md, titans): the memory
rewrites itself per sequence and protects no weights across jobs. A version keeps the branches in
`memory/neural_memory.safetensors` next to the buffer; the next job starts from both.
"""

from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from memory.replay import ReplayBuffer
from trainers.contracts.lines import ContinualEvaluation
from trainers.methods.lora.method import LoraMethod
from trainers.methods.replay.method import ReplayMethod
from trainers.methods.titans.config import TitansConfig
from trainers.methods.titans.layer import WEIGHTS_FILE, TitansForCausalLM

__all__ = ["TitansMethod"]


class TitansMethod(ReplayMethod):
    """Memory branches on a frozen base (optionally with LoRA), trained with replay.

    Knobs (`TitansConfig`): the replay method's, plus where the memories attach
    (`memory_layers`, `variant`), their shape (`heads`, `head_dim`, `memory_depth`,
    `expansion`), how they write (`chunk_size`, `max_step_size`) and `base_lora`.
    """

    def __init__(self, config: TitansConfig) -> None:
        super().__init__(config)
        self.config: TitansConfig = config
        self.titans: TitansForCausalLM | None = None

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> TitansForCausalLM:  # type: ignore[override]
        """Fresh memory branches for a first job, else the parent's; the parent's buffer too."""
        base_model.requires_grad_(False)
        lm = LoraMethod.prepare_model(self, base_model, parent_dir) if self.config.base_lora else base_model
        model = TitansForCausalLM(lm, base_model, self.config)
        if parent_dir is not None:
            model.branches.load_state_dict(load_file(parent_dir / "memory" / WEIGHTS_FILE))
            self.buffer = ReplayBuffer.load(parent_dir / "memory")
        self.titans = model
        self.model = model  # type: ignore[assignment]  # the buffer's surprise runs the whole model
        return model

    def after_evaluation(self, step: int, evaluation: ContinualEvaluation) -> dict[str, float]:
        """Nothing: the replay share stays as configured."""
        return {}

    def save_memory(self, memory_dir: Path) -> None:
        """Write the buffer (`replay.json`) and the memory branches (`neural_memory.safetensors`)."""
        assert self.titans is not None
        super().save_memory(memory_dir)
        weights = {name: t.detach().contiguous() for name, t in self.titans.branches.state_dict().items()}
        save_file(weights, memory_dir / WEIGHTS_FILE)

    def load_memory(self, memory_dir: Path) -> None:
        """Restore the buffer of a checkpoint (the branches' weights are in the checkpoint itself)."""
        super().load_memory(memory_dir)

    @torch.no_grad()
    def export_adapter(self, model: TitansForCausalLM, adapter_dir: Path) -> None:  # type: ignore[override]
        """The base model's LoRA adapter in PEFT format with `base_lora`; else `adapter/` stays empty.

        The memory branches are served from `memory/` by the registry's loader.
        """
        adapter_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(model.lm, PeftModel):
            model.lm.save_pretrained(adapter_dir)

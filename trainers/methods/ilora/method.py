"""I-LoRA (Ren et al., arXiv 2402.18865): a fast LoRA learns, a slow LoRA interpolates it and is served.

Per step, on a batch of new rows plus replayed rows of earlier jobs (one forward pass of the
fast adapter over both):

    loss = CE(fast, batch) + consistency_weight * mean_l || h_fast^l - sg(h_slow^l) ||^2   (replayed rows)

and after each optimizer step, with probability `update_probability`,

    slow <- slow_lambda * slow + (1 - slow_lambda) * fast.

The slow adapter is a set of tensors shaped like the fast adapter's LoRA weights; its forward
pass (replayed rows only, no gradient) runs the same module with those tensors swapped in by
`torch.func.functional_call`. So one step costs one forward and backward of the batch plus one
forward of the replayed rows, where the reference code needs three forward passes.

Deliberately unlike the reference code (LLMCL; docs/methods.md, ilora): attention masks are passed
and padded labels are -100; the consistency target is the slow adapter's hidden state itself
(an MSE over real tokens), not max(h_fast, h_slow); the update probability is applied; replay is
skipped when there is nothing earlier to replay, not by task name; rows join the buffer at the
job's start and are never replayed in the job that brings them.
"""

import random
from pathlib import Path

import torch
from datasets import Dataset
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from trainers.methods.ilora.config import IloraConfig
from trainers.methods.replay.method import ReplayMethod

__all__ = ["IloraMethod", "consistency_loss"]

FAST_DIR = "fast_adapter"  # PEFT format, under memory/
SLOW_FILE = "slow_adapter.safetensors"  # keyed by the fast adapter's parameter names


class IloraMethod(ReplayMethod):
    """Fast and slow LoRA adapters, a replay buffer and a consistency loss; serves the slow one.

    Knobs (`IloraConfig`): the replay method's, plus `slow_lambda`, `update_probability`,
    `consistency_weight` and `consistency_layers`.
    """

    def __init__(self, config: IloraConfig) -> None:
        super().__init__(config)
        self.config: IloraConfig = config
        self.slow: dict[str, torch.Tensor] = {}
        self.seed = 0

    def prepare_model(self, base_model: PreTrainedModel, parent_dir: Path | None) -> PeftModel:
        """The parent's fast adapter (trainable) and slow weights; for a first job fresh ones, slow = fast."""
        if parent_dir is None:
            model = super().prepare_model(base_model, None)
        else:
            model = PeftModel.from_pretrained(base_model, parent_dir / "memory" / FAST_DIR, is_trainable=True)
            self.model = model
            super().load_memory(parent_dir / "memory")
        self.slow = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        if parent_dir is not None:
            self.slow = load_file(parent_dir / "memory" / SLOW_FILE)
        return model

    def start_job(self, job_id: str, rows: Dataset, seed: int) -> None:
        """As the replay method; also seeds the slow adapter's update draws."""
        super().start_job(job_id, rows, seed)
        self.seed = seed

    def training_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], outputs: CausalLMOutputWithPast
    ) -> torch.Tensor:
        """Token cross-entropy of the batch plus the weighted consistency loss on its replayed rows."""
        replayed = batch["replayed"]  # (batch,) bool
        if not replayed.any() or self.config.consistency_weight == 0:
            return outputs.loss
        layers = self._layers(len(outputs.hidden_states) - 1)
        fast = [outputs.hidden_states[i][replayed] for i in layers]  # each (replayed, seq, hidden)
        slow = self.slow_hidden_states(batch["input_ids"][replayed], batch["attention_mask"][replayed])
        mask = batch["attention_mask"][replayed]  # (replayed, seq)
        consistency = consistency_loss(fast, [slow[i] for i in layers], mask)
        return outputs.loss + self.config.consistency_weight * consistency

    @torch.no_grad()
    def slow_hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Hidden states (embeddings, then each decoder layer) of the slow adapter; no gradient.

        Args:
            input_ids: (rows, seq).
            attention_mask: (rows, seq).

        Returns:
            One (rows, seq, hidden) tensor per layer, embeddings first.
        """
        assert self.model is not None
        outputs = torch.func.functional_call(
            self.model,
            self.slow,
            args=(),
            kwargs={"input_ids": input_ids, "attention_mask": attention_mask, "output_hidden_states": True},
            strict=False,
        )
        return outputs.hidden_states

    @torch.no_grad()
    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        """With probability `update_probability`: slow <- lambda * slow + (1 - lambda) * fast."""
        draw = random.Random(f"{self.seed}:{self.job_id}:slow:{step}").random()
        if draw >= self.config.update_probability:
            return
        fast = dict(model.named_parameters())
        for name, slow in self.slow.items():
            slow.mul_(self.config.slow_lambda).add_(fast[name].detach(), alpha=1 - self.config.slow_lambda)

    def save_memory(self, memory_dir: Path) -> None:
        """Write the buffer, the fast adapter (PEFT format) and the slow weights."""
        assert self.model is not None
        super().save_memory(memory_dir)
        self.model.save_pretrained(memory_dir / FAST_DIR)
        save_file({name: t.contiguous() for name, t in self.slow.items()}, memory_dir / SLOW_FILE)

    def load_memory(self, memory_dir: Path) -> None:
        """Restore the buffer and the slow weights of a checkpoint (the fast ones are in the checkpoint)."""
        super().load_memory(memory_dir)
        self.slow = load_file(memory_dir / SLOW_FILE)

    @torch.no_grad()
    def export_adapter(self, model: PeftModel, adapter_dir: Path) -> None:
        """Save the slow adapter as a plain PEFT LoRA adapter: the one that is served."""
        parameters = dict(model.named_parameters())
        fast = {name: parameters[name].detach().clone() for name in self.slow}
        for name, slow in self.slow.items():
            parameters[name].copy_(slow)
        model.save_pretrained(adapter_dir)
        for name, weights in fast.items():
            parameters[name].copy_(weights)

    def _layers(self, n_layers: int) -> list[int]:
        """Indices into `hidden_states` (0 = embeddings) of the configured decoder layers' outputs."""
        if self.config.consistency_layers == "all":
            return list(range(1, n_layers + 1))
        return [1 + (i % n_layers) for i in self.config.consistency_layers]


def consistency_loss(fast: list[torch.Tensor], slow: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of fast to slow hidden states, each token's vector scaled to unit RMS,
    over real tokens, averaged over layers.

    I-LoRA compares raw hidden states. A pretrained LLM's residual stream carries a few massive
    activations (SmolLM2-135M: up to 24,890 in layers 15-29, RMS 142, against RMS 2-7 elsewhere),
    so a raw MSE is set by those few dimensions and the architecture's scale: it was 8,048 beside
    a cross-entropy of 2 on SmolLM2's second job. Each decoder layer reads its input through an
    RMS norm, so the direction of each token's vector is what the next layer sees; comparing
    unit-RMS vectors makes the loss scale-free (at most 4 per element) and comparable across
    architectures, and on a model whose hidden states have RMS near 1 it is the raw MSE.

    Args:
        fast: Per layer, (rows, seq, hidden), with gradient.
        slow: Per layer, (rows, seq, hidden); treated as a constant target.
        mask: (rows, seq), 1 on real tokens.

    Returns:
        A scalar; zero when fast and slow agree.
    """
    weights = mask.unsqueeze(-1).float()  # (rows, seq, 1)
    per_layer = [
        (((_unit_rms(f) - _unit_rms(s.detach())) ** 2) * weights).sum() / (weights.sum() * f.shape[-1])
        for f, s in zip(fast, slow, strict=True)
    ]
    return torch.stack(per_layer).mean()


def _unit_rms(hidden: torch.Tensor) -> torch.Tensor:
    """(rows, seq, hidden) in float32, each token's vector divided by its root mean square."""
    hidden = hidden.float()
    return hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-6)

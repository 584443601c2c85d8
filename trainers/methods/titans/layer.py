"""A neural long-term memory attached to chosen decoder layers of a frozen causal LM.

Per attached layer l (docs/methods.md, titans), with u = RMSNorm(h_in) and m = NM_l(u) (the
memory reads u, then writes it; `memory.neural_memory`):

    gate  (MAG):  h_out = Layer(h_in) + tanh(g_l) * W_o m
    layer (MAL):  h_out = Layer(h_in + tanh(g_l) * W_o m)

with the per-channel gate g_l initialised to zero, so an untrained attachment leaves the base
model's logits exactly as they were (LLaMA-Adapter's zero-init gating). The memories run in hooks
on the base model's modules, which stay as they are: PEFT, `generate` and the hidden-state outputs
work unchanged.

Memory state follows the sequence: a call of the decoder with an empty (or no) KV cache starts a
new sequence, from a fresh memory or from the state given to `start_memory`; a call that continues
a cache (a decoding step of `generate`) continues the memory where the last call left it.
Padding (attention mask 0) writes nothing.
"""

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors.torch import load_file
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from memory.neural_memory import NeuralMemory, NeuralMemoryState
from trainers.contracts.methods import Method
from trainers.methods.titans.config import TitansConfig
from trainers.servable import StatefulVersion

__all__ = ["WEIGHTS_FILE", "MemoryBranch", "TitansForCausalLM", "load_version", "memory_layers"]

WEIGHTS_FILE = "neural_memory.safetensors"  # under memory/: every branch's parameters

MemoryStates = dict[str, NeuralMemoryState]  # by decoder layer index


class MemoryBranch(nn.Module):
    """One attached layer's memory: norm, neural memory, output projection and zero-initialised gate.

    Args:
        hidden_size: The base model's hidden size.
        config: The method's config (memory shape).
    """

    def __init__(self, hidden_size: int, config: TitansConfig) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(hidden_size, eps=1e-6)
        self.memory = NeuralMemory(
            hidden_size,
            heads=config.heads,
            head_dim=config.head_dim,
            depth=config.memory_depth,
            expansion=config.expansion,
            chunk_size=config.chunk_size,
            max_step_size=config.max_step_size,
        )
        self.out = nn.Linear(config.heads * config.head_dim, hidden_size, bias=False)
        self.gate = nn.Parameter(torch.zeros(hidden_size))  # tanh(0) = 0: the base model exactly

    def forward(
        self, hidden: torch.Tensor, state: NeuralMemoryState | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, NeuralMemoryState]:
        """Read and write `hidden` (batch, seq, hidden_size).

        Returns:
            What joins the residual stream (batch, seq, hidden_size), in `hidden`'s dtype, and
            the memory after the call.
        """
        out = self.memory(self.norm(hidden.float()), state, mask)
        contribution = torch.tanh(self.gate) * self.out(out.retrieved)  # (batch, seq, hidden_size)
        return contribution.to(hidden.dtype), out.state


class TitansForCausalLM(StatefulVersion):
    """A causal LM (the base, or a PEFT model around it) with memory branches on some decoder layers.

    Args:
        lm: What runs the forward pass: `base_model` itself or a `PeftModel` wrapping it.
        base_model: The frozen Hugging Face causal LM whose decoder layers get the memories.
        config: Where and how big the memories are.
    """

    def __init__(self, lm: nn.Module, base_model: PreTrainedModel, config: TitansConfig) -> None:
        super().__init__()
        self.lm = lm
        decoder = base_model.get_decoder()
        layers = memory_layers(len(decoder.layers), config.memory_layers)
        hidden_size = base_model.config.hidden_size
        self.branches = nn.ModuleDict({str(i): MemoryBranch(hidden_size, config) for i in layers})
        self._padding: torch.Tensor | None = None  # the current call's attention mask (batch, past + seq)
        self._starting = True  # whether the current call starts a sequence
        self._start: MemoryStates = {}  # where a sequence starts; fresh memories when empty
        self._states: MemoryStates = {}  # where the last call left each memory
        decoder.register_forward_pre_hook(self._see_call, with_kwargs=True)
        for i in layers:
            # prepend: before transformers' own hooks that record `hidden_states`.
            layer = decoder.layers[i]
            if config.variant == "gate":
                layer.register_forward_hook(partial(self._beside, str(i)), with_kwargs=True, prepend=True)
            else:
                layer.register_forward_pre_hook(partial(self._before, str(i)), with_kwargs=True, prepend=True)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> CausalLMOutputWithPast:
        """The causal LM's forward pass (`labels`, `output_hidden_states`, ... pass through)."""
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, **kwargs)  # type: ignore[no-any-return]

    @torch.no_grad()
    def generate(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """`transformers`' generate; the prompt is written to memory chunk by chunk as it is read."""
        return self.lm.generate(*args, **kwargs)  # type: ignore[no-any-return]

    def memory_state(self) -> MemoryStates:
        """Each memory after the last call, by decoder layer index."""
        return dict(self._states)

    def start_memory(self, state: MemoryStates | None) -> None:
        """Start every following sequence from `state` (from `memory_state`), or fresh when None."""
        self._start = dict(state or {})

    def _see_call(self, decoder: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Forward pre-hook of the decoder: does this call start a sequence, which tokens are padding."""
        cache = kwargs.get("cache")
        self._starting = cache is None or cache.get_seq_length() == 0
        self._padding = kwargs.get("attention_mask")

    def _beside(
        self,
        index: str,
        layer: nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        output: torch.Tensor,
    ) -> torch.Tensor:
        """Forward hook of a decoder layer (MAG): the memory reads the layer's input beside it."""
        return output + self._read_write(index, args[0])

    def _before(
        self, index: str, layer: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Forward pre-hook of a decoder layer (MAL): the memory's output joins the layer's input."""
        hidden = args[0]
        return (hidden + self._read_write(index, hidden), *args[1:]), kwargs

    def _read_write(self, index: str, hidden: torch.Tensor) -> torch.Tensor:
        """Run one branch on the call's tokens (batch, seq, hidden) and keep its state."""
        state = self._start.get(index) if self._starting else self._states[index]
        mask = None if self._padding is None else self._padding[:, -hidden.shape[1] :]
        contribution, after = self.branches[index](hidden, state, mask)
        self._states[index] = after.detach()
        return contribution


def memory_layers(n_layers: int, spec: str | list[int]) -> list[int]:
    """Decoder layer indices, sorted: `"middle"` is {L/4, L/2, 3L/4}; negative indices count from the end."""
    if spec == "middle":
        return sorted({n_layers // 4, n_layers // 2, 3 * n_layers // 4})
    return sorted({i % n_layers for i in spec})


def load_version(base_model: PreTrainedModel, version_dir: Path) -> TitansForCausalLM:
    """The registry's loader: a titans version on `base_model`, for serving and evaluation.

    Reads the config from `manifest.json`, the base model's LoRA adapter from `adapter/` when the
    lineage trains one, and the memory branches from `memory/neural_memory.safetensors`.
    """
    manifest = json.loads((version_dir / "manifest.json").read_text())
    config: TitansConfig = Method.resolve("titans", manifest["config"]).config
    base_model.requires_grad_(False)
    lm = PeftModel.from_pretrained(base_model, version_dir / "adapter") if config.base_lora else base_model
    model = TitansForCausalLM(lm, base_model, config)
    model.branches.load_state_dict(load_file(version_dir / "memory" / WEIGHTS_FILE))
    return model.eval()

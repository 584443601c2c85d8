"""Load a published version for inference: what the native backend serves and the evaluator scores.

A version of a PEFT-adapter method (`lora`, `replay`, `ilora`) is the base model with the
adapter in `adapter/`; a method with modules PEFT cannot express (`titans`, `trc`) names its own
loader in `trainers.contracts.methods`. Either way the result is a causal LM in eval mode whose forward
takes `input_ids` and `attention_mask` and returns `logits`, so `transformers`' `generate` and
the probe runners work on it unchanged.

A version whose model carries a memory from one call to the next (`titans`) loads as a
`StatefulVersion`: every sequence it reads starts from `start_memory`'s state (a fresh memory
unless one is given) and `memory_state()` is its memory after the last call, which the native
backend keeps per session.
"""

import importlib
import json
from abc import ABCMeta, abstractmethod
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from trainers.contracts.methods import version_loader

__all__ = ["StatefulVersion", "load_version", "version_method"]


def load_version(base_model: str | PreTrainedModel, version_dir: Path) -> nn.Module:
    """The version in `version_dir` on top of `base_model`, in eval mode.

    Args:
        base_model: The lineage's base model, as a path or hub id, or already loaded (it is then
            modified in place for PEFT versions).
        version_dir: A published (or staged) version: `manifest.json`, `adapter/`, `memory/`.
    """
    if isinstance(base_model, str):
        base_model = AutoModelForCausalLM.from_pretrained(base_model)
    loader = version_loader(version_method(version_dir))
    if loader is None:
        return PeftModel.from_pretrained(base_model, version_dir / "adapter").eval()
    module_name, function_name = loader.split(":")
    load = getattr(importlib.import_module(module_name), function_name)
    return load(base_model, version_dir).eval()  # type: ignore[no-any-return]


def version_method(version_dir: Path) -> str:
    """The method that trained the version in `version_dir` (from its manifest)."""
    return str(json.loads((version_dir / "manifest.json").read_text())["method"])


class StatefulVersion(nn.Module, metaclass=ABCMeta):
    """A loaded version whose model carries a memory across calls (see the module docstring)."""

    @abstractmethod
    def memory_state(self) -> Any:
        """The memory after the last call (opaque; for `start_memory`)."""

    @abstractmethod
    def start_memory(self, state: Any | None) -> None:
        """Start every following sequence from `state`, or from a fresh memory when None."""

    @abstractmethod
    def generate(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """`transformers`' generate; each sequence starts from `start_memory`'s state."""

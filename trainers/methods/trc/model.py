"""A frozen decoder with TRC² modules: attaching them, their weights, consolidation, PEFT export, loading.

`attach` puts a `ColumnLinear` in place of every target linear layer of every decoder layer, a
`ThalamicRouter` on each decoder layer (run by a forward pre-hook, before the layer's columns)
and a `HippocampalRead` on the middle decoder layer. A version keeps every TRC² tensor in
`memory/columns.safetensors` (keyed by parameter and buffer names) and the store beside it;
`load_version` is the loader the registry names for serving and evaluation.
"""

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel

from memory.hippocampus import Hippocampus
from trainers.methods.trc.config import TrcConfig
from trainers.methods.trc.layer import ColumnLinear, HippocampalRead, Prefix, RoutingSlot, ThalamicRouter

__all__ = [
    "COLUMNS_FILE",
    "Cortex",
    "attach",
    "consolidate",
    "export_peft_adapter",
    "load_columns",
    "load_version",
    "save_columns",
    "trc_tensors",
]

COLUMNS_FILE = "columns.safetensors"


@dataclass
class Cortex:
    """The TRC² modules attached to one model.

    Attributes:
        routers: One per decoder layer, in order.
        columns: Per decoder layer, its column layers by module name.
        read: The hippocampal read, None without a hippocampus.
        injection_layer: Index of the decoder layer the read feeds.
    """

    routers: list[ThalamicRouter]
    columns: list[dict[str, ColumnLinear]]
    read: HippocampalRead | None
    injection_layer: int


def attach(model: PreTrainedModel, config: TrcConfig, store: Hippocampus | None) -> Cortex:
    """Freeze `model` and attach columns, routers and (with a store) the hippocampal read, in place.

    New plastic columns draw their `lora_A` from torch's global generator (seeded by the loop).
    """
    model.requires_grad_(False)
    hidden = model.config.hidden_size
    layers = model.get_decoder().layers
    injection_layer = len(layers) // 2  # design: a middle layer (docs/methods.md)
    cortex = Cortex([], [], None, injection_layer)
    prefix = Prefix()
    model.register_forward_pre_hook(partial(_take_prefix, prefix=prefix), with_kwargs=True)
    for index, layer in enumerate(layers):
        slot = RoutingSlot()
        columns = {}
        for name, module in list(layer.named_modules()):
            if not isinstance(module, nn.Linear) or not _targeted(name, config.target_modules):
                continue
            column = ColumnLinear(
                module,
                config.columns,
                config.r,
                config.columns * config.r,
                config.alpha,
                config.dropout,
                slot,
            )
            parent, _, child = name.rpartition(".")
            setattr(layer.get_submodule(parent), child, column)
            columns[name] = column
        if index == injection_layer and store is not None:
            cortex.read = HippocampalRead(
                hidden, config.r, store, config.read_top_k, config.read_temperature, prefix
            )
            layer.hippocampus = cortex.read
            layer.register_forward_pre_hook(_add_readout)
        router = ThalamicRouter(
            hidden,
            config.columns,
            config.router_rank,
            config.top_k,
            config.group_size,
            config.chunk_size,
            uniform=not config.router,
            slot=slot,
            prefix=prefix,
        )
        layer.thalamus = router
        layer.register_forward_pre_hook(_route)
        cortex.routers.append(router)
        cortex.columns.append(columns)
    return cortex


def save_columns(model: nn.Module, path: Path) -> None:
    """Write every TRC² tensor of `model` (trainable weights and stable columns) to `path`."""
    save_file({name: tensor.detach().contiguous() for name, tensor in trc_tensors(model).items()}, path)


def load_columns(model: nn.Module, path: Path, stable_only: bool = False) -> None:
    """Copy what `save_columns` wrote into `model` (with `stable_only`, the stable columns alone)."""
    tensors = trc_tensors(model)
    with torch.no_grad():
        for name, saved in load_file(path).items():
            if not stable_only or ".stable_" in name:
                tensors[name].copy_(saved)


@torch.no_grad()
def consolidate(cortex: Cortex, usage: torch.Tensor, rate: float) -> None:
    """The stable columns absorb `rate` of the usage-weighted plastic columns, which keep `1 - rate`.

    Per column layer: `B_0 A_0 <- SVD_{stable rank}(B_0 A_0 + rate * sum_k usage_k B_k A_k)` and
    `B_k <- (1 - rate) B_k`; with input-independent routing the model's function is unchanged
    (up to the truncation).

    Args:
        cortex: The attached modules.
        usage: (layers, columns) mean gate of each column over the job.
        rate: Consolidation rate in [0, 1].
    """
    for layer_usage, columns in zip(usage, cortex.columns, strict=True):
        for column in columns.values():
            factors = column.update_factors(layer_usage, rate)
            stable_B, stable_A = _low_rank(*factors, column.stable_A.shape[0])
            column.stable_B.copy_(stable_B)
            column.stable_A.copy_(stable_A)
            column.lora_B.mul_(1 - rate)


@torch.no_grad()
def export_peft_adapter(
    model: PreTrainedModel, cortex: Cortex, usage: torch.Tensor, config: TrcConfig, adapter_dir: Path
) -> None:
    """Write the stable plus usage-weighted plastic columns as a plain rank-`r` PEFT LoRA adapter.

    The routed model cannot be expressed as one LoRA; this is its routing-averaged update,
    truncated to rank `r` by SVD, for vLLM and `peft` (the native backend serves the routed model).
    """
    names = {module: name for name, module in model.named_modules()}
    weights = {}
    for layer_usage, columns in zip(usage, cortex.columns, strict=True):
        for column in columns.values():
            lora_B, lora_A = _low_rank(*column.update_factors(layer_usage), config.r)
            prefix = f"base_model.model.{names[column]}"
            weights[f"{prefix}.lora_A.weight"] = lora_A.contiguous()
            weights[f"{prefix}.lora_B.weight"] = lora_B.contiguous()
    adapter_dir.mkdir(parents=True, exist_ok=True)
    PeftLoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        target_modules=sorted({name.rsplit(".", 1)[-1] for columns in cortex.columns for name in columns}),
        task_type="CAUSAL_LM",
        base_model_name_or_path=model.config.name_or_path,
    ).save_pretrained(str(adapter_dir))
    save_file(weights, adapter_dir / "adapter_model.safetensors")


def load_version(base_model: PreTrainedModel, version_dir: Path) -> nn.Module:
    """A published `trc` version: `base_model` with its columns, routers and store, in eval mode."""
    config = TrcConfig(**json.loads((version_dir / "manifest.json").read_text())["config"])
    memory_dir = version_dir / "memory"
    store = Hippocampus.load(memory_dir) if config.hippocampus else None
    attach(base_model, config, store)
    load_columns(base_model, memory_dir / COLUMNS_FILE)
    return base_model.eval()


def _targeted(name: str, target_modules: str | list[str]) -> bool:
    """`name` (inside a decoder layer) is a target: every linear layer for "all-linear"."""
    return target_modules == "all-linear" or name.rsplit(".", 1)[-1] in target_modules


def _take_prefix(model: nn.Module, args: tuple, kwargs: dict, prefix: Prefix) -> None:
    prefix.mask = kwargs.get("attention_mask")  # callers may pass none: then nothing is padding
    cache = kwargs.get("cache")
    prefix.cached = cache is not None or kwargs.get("use_cache") is True
    prefix.continuing = cache is not None and cache.get_seq_length() > 0


def _route(layer: nn.Module, args: tuple) -> None:
    layer.thalamus(args[0])  # the gates go to the slot the layer's columns read


def _add_readout(layer: nn.Module, args: tuple) -> tuple:
    return (layer.hippocampus(args[0]), *args[1:])


def trc_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and stable-column buffers, by name."""
    tensors: dict[str, torch.Tensor] = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tensors |= {n: b for n, b in model.named_buffers() if ".stable_" in n}
    return tensors


def _low_rank(B: torch.Tensor, A: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B (out, k) @ A (k, in) -> B' (out, rank), A' (rank, in) with B' @ A' the best rank-`rank`
    approximation of B @ A (Eckart-Young), its singular values split evenly between the two.

    The SVD is that of a core of at most (k, k): `B = Q_B R_B`, `A^T = Q_A R_A`, so
    `B @ A = Q_B (R_B R_A^T) Q_A^T`; the (out, in) product is never formed, and the work is
    O((out + in) k^2) instead of the full SVD's O(out in min(out, in)), k being a few dozen where
    out and in are hundreds.
    """
    q_b, r_b = torch.linalg.qr(B)  # (out, p), (p, k) with p = min(out, k)
    q_a, r_a = torch.linalg.qr(A.T)  # (in, q), (q, k) with q = min(in, k)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)  # the (p, q) core
    root = s[:rank].sqrt()  # (rank,)
    b, a = (q_b @ u[:, :rank]) * root, root.unsqueeze(1) * (vh[:rank] @ q_a.T)
    if b.shape[1] < rank:  # fewer components than the rank: pad with zero ones
        b = torch.cat([b, b.new_zeros(b.shape[0], rank - b.shape[1])], dim=1)
        a = torch.cat([a, a.new_zeros(rank - a.shape[0], a.shape[1])], dim=0)
    return b, a

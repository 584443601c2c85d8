"""The compute precision of training: bfloat16 autocast where the hardware has it natively.

Measured on SmolLM2-135M-Instruct with a rank-16 LoRA on every linear layer, batch 8 of about
60 tokens, 2 CPU cores with AVX512-BF16 (docs/benchmarks.md, "Real model"): a step of the loop
takes 1.6 s with bfloat16 autocast against 2.1 s in float32, and a bare peft script ends 12 steps
at loss 0.1946 in bfloat16 against 0.1947 in float32.
Autocast keeps the master weights (the adapter's and the optimizer's) in float32 and runs
reductions, norms and the loss in float32; only the matrix products drop to bfloat16.
"""

from pathlib import Path

import torch

__all__ = ["base_dtype", "compute_dtype", "cpu_bf16_instructions", "device_type"]


def device_type() -> str:
    """`"cuda"` when a GPU is visible, else `"cpu"`."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype of matrix products for a spec's `precision` (`"auto"`, `"float32"`, `"bfloat16"`)."""
    if precision == "auto":
        native = (
            torch.cuda.is_bf16_supported() if torch.cuda.is_available() else bool(cpu_bf16_instructions())
        )
        precision = "bfloat16" if native else "float32"
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]


def base_dtype(compute: torch.dtype) -> torch.dtype:
    """The dtype the frozen base model is loaded in.

    On a GPU the base is stored in the compute dtype (half the memory of float32, no cast per
    step); trainable weights stay float32 (peft upcasts adapters). On a CPU the base stays
    float32: autocast casts per product at the same speed, and layers outside autocast's list
    keep float32.
    """
    return compute if device_type() == "cuda" else torch.float32


def cpu_bf16_instructions() -> list[str]:
    """The CPU's bfloat16 instruction sets (`avx512_bf16`, `amx_bf16`) from /proc/cpuinfo; none
    where it cannot be read (not Linux: no cheap way to tell, so stay exact)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return sorted(flags & {"avx512_bf16", "amx_bf16"})

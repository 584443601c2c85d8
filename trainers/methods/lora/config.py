"""Configuration of plain LoRA (Hu et al., 2021, arXiv 2106.09685). Torch-free."""

from dataclasses import dataclass

from trainers.methods.checks import check_float, check_int, check_modules

__all__ = ["LoraConfig"]


@dataclass(frozen=True)
class LoraConfig:
    """A lineage's LoRA setup; fixed for the life of the lineage.

    Attributes:
        r: Rank of the update matrices (vLLM serves ranks up to its `--max-lora-rank`).
        alpha: Scaling numerator: the update is multiplied by `alpha / r`.
        dropout: Dropout on the LoRA input during training.
        target_modules: `"all-linear"` (every linear layer but the output head) or module names.
        learning_rate: Base AdamW learning rate; a job's `learning_rate_multiplier` scales it.
        weight_decay: AdamW weight decay on the adapter weights.
        warmup_ratio: Fraction of a job's steps with a linear warm-up, then linear decay to 0.
        max_grad_norm: Gradients are clipped to this global norm; 0 turns clipping off.
        max_seq_len: Training rows are truncated to this many tokens.
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"
    # 2e-3 teaches the small base model 24 new facts in ~300 steps (docs/training.md).
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    max_seq_len: int = 256

    def __post_init__(self) -> None:
        check_int("r", self.r, 1, 512)
        check_float("alpha", self.alpha, 0.0, 4096.0)
        check_float("dropout", self.dropout, 0.0, 1.0, include_high=False)
        check_modules("target_modules", self.target_modules)
        check_float("learning_rate", self.learning_rate, 1e-9, 1.0)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        check_float("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e6)
        check_int("max_seq_len", self.max_seq_len, 8, 1 << 20)

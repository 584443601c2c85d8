"""Configuration of Titans-style neural long-term memory (Behrouz et al., arXiv 2501.00663). Torch-free."""

from dataclasses import dataclass

from trainers.methods.checks import MethodConfigError, check_float, check_int
from trainers.methods.replay.config import ReplayConfig

__all__ = ["TitansConfig"]


@dataclass(frozen=True)
class TitansConfig(ReplayConfig):
    """The replay method's fields, plus the memory and where it attaches.

    LoRA's fields (`r`, `alpha`, `dropout`, `target_modules`) apply only with `base_lora`; the
    replay method's `distill_weight` must stay 0 (titans replays without distillation).

    Attributes:
        memory_layers: `"middle"` (the decoder layers at L/4, L/2 and 3L/4) or decoder layer
            indices (negative from the last) that read and write a memory.
        variant: `"gate"`: memory as a gate (MAG), a branch parallel to the layer whose gated
            output joins the layer's; `"layer"`: memory as a layer (MAL), before the layer.
        heads: Independent memories per attached layer.
        head_dim: Width of each memory's keys, values and queries.
        memory_depth: Layers of the memory MLP (at least 2).
        expansion: Hidden width of the memory MLP, in multiples of `head_dim`.
        chunk_size: Tokens written together from one chunk's starting weights.
        max_step_size: Bound of the memory's effective step size (see `memory.neural_memory`).
        base_lora: Also train a LoRA adapter on the frozen base model.
    """

    # docs/methods.md, titans: 2-4 middle layers, where features are the most reusable.
    memory_layers: str | list[int] = "middle"
    variant: str = "gate"
    # lucidrains/titans-pytorch's training script: 4 heads of 64, MLP depth 2, expansion 4.
    heads: int = 4
    head_dim: int = 64
    memory_depth: int = 2
    expansion: int = 4
    # docs/methods.md, titans: chunks of 16-64; 16 keeps reads fresh and writes stable.
    chunk_size: int = 16
    # Half the largest bound measured stable with chunks of 16 (memory/neural_memory.py).
    max_step_size: float = 0.5
    # The paper's memory trains alone on a frozen model; LoRA on the base is optional.
    base_lora: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.distill_weight != 0:
            raise MethodConfigError(
                "distill_weight",
                f"titans replays without distillation towards the parent; got {self.distill_weight} "
                "(use a replay lineage for replay with distillation)",
            )
        layers = self.memory_layers
        if layers != "middle" and (
            not isinstance(layers, list)
            or not layers
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
        ):
            raise MethodConfigError(
                "memory_layers", f'must be "middle" or a non-empty list of layer indices, got {layers!r}'
            )
        if self.variant not in ("gate", "layer"):
            raise MethodConfigError("variant", f'must be "gate" or "layer", got {self.variant!r}')
        check_int("heads", self.heads, 1, 256)
        check_int("head_dim", self.head_dim, 1, 1024)
        check_int("memory_depth", self.memory_depth, 2, 8)
        check_int("expansion", self.expansion, 1, 16)
        check_int("chunk_size", self.chunk_size, 1, 4096)
        check_float("max_step_size", self.max_step_size, 0.0, 10.0)
        if not isinstance(self.base_lora, bool):
            raise MethodConfigError("base_lora", f"must be true or false, got {self.base_lora!r}")

"""Configuration of I-LoRA (Ren et al., arXiv 2402.18865). Torch-free."""

from dataclasses import dataclass

from trainers.methods.checks import MethodConfigError, check_float
from trainers.methods.replay.config import ReplayConfig

__all__ = ["IloraConfig"]


@dataclass(frozen=True)
class IloraConfig(ReplayConfig):
    """The replay method's fields, plus the slow adapter and the consistency loss.

    Attributes:
        slow_lambda: After an optimizer step, slow <- slow_lambda * slow + (1 - slow_lambda) * fast.
        update_probability: Chance that a given step updates the slow adapter (CLS-ER's `r`).
        consistency_weight: Weight of the consistency loss on replayed rows.
        consistency_layers: `"all"` (every decoder layer's output) or decoder layer indices
            (negative counts from the last).
    """

    # CLS-ER (Arani et al., 2022) and SuRe (beta ~ 0.995) use a slow EMA with a horizon of
    # hundreds of steps; the reference code's 0.25 makes the slow adapter a one-step-lagged copy
    # of the fast one. Our jobs are a few hundred steps and the slow
    # adapter is the one served, so its horizon 1 / (1 - lambda) / p must stay well
    # inside a job (20 steps: the last fifth of a 100-step job): docs/methods.md.
    slow_lambda: float = 0.95
    update_probability: float = 1.0
    # LLMCL's reg_weight for the hidden-state MSE.
    consistency_weight: float = 1.0
    consistency_layers: str | list[int] = "all"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.distill_weight != 0:
            raise MethodConfigError(
                "distill_weight",
                "ilora does not distil towards the parent: its consistency loss pulls replayed rows "
                f"towards the slow adapter (consistency_weight); got {self.distill_weight}",
            )
        check_float("slow_lambda", self.slow_lambda, 0.0, 1.0)
        check_float("update_probability", self.update_probability, 0.0, 1.0)
        check_float("consistency_weight", self.consistency_weight, 0.0, 1e6)
        layers = self.consistency_layers
        if layers != "all" and (
            not isinstance(layers, list)
            or not layers
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
        ):
            raise MethodConfigError(
                "consistency_layers", f'must be "all" or a non-empty list of layer indices, got {layers!r}'
            )

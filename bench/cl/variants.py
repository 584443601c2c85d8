"""What the continual-learning benchmark compares: methods, baselines and ablations by name. Torch-free."""

from dataclasses import dataclass, field
from typing import Any

__all__ = ["VARIANTS", "Variant"]


@dataclass(frozen=True)
class Variant:
    """A method and config as the benchmark names it.

    Attributes:
        method: The registered method, or `"multitask"` for the joint-training upper bound.
        config: Fields of the method's config other than its defaults.
        what: One line for the tables.
    """

    method: str
    config: dict[str, Any] = field(default_factory=dict)
    what: str = ""


_NO_REPLAY = {"replay_ratio": 0.0, "replay_ratio_max": 0.0}
_NO_DISTILLATION = {"distill_weight": 0.0, "distill_weight_max": 0.0}
VARIANTS = {
    "lora": Variant("lora", what="sequential LoRA, nothing against forgetting"),
    "replay-0.25": Variant("replay", {"replay_ratio": 0.25}, "LoRA + replay, 2 old rows per 8 new"),
    "replay": Variant("replay", what="LoRA + replay at the default ratio 0.5"),
    "replay-1.0": Variant("replay", {"replay_ratio": 1.0}, "LoRA + replay, as many old rows as new"),
    "replay-distill": Variant(
        "replay", {"distill_weight": 1.0}, "replay 0.5 + KL to the parent on replayed rows (LwF/DER++)"
    ),
    "ewc": Variant("ewc", what="LoRA + online EWC, weight 1"),
    "ewc-10": Variant("ewc", {"ewc_weight": 10.0}, "LoRA + online EWC, weight 10"),
    "ewc-100": Variant("ewc", {"ewc_weight": 100.0}, "LoRA + online EWC, weight 100"),
    # The Fisher of a job that memorised its rows is tiny (docs/methods.md, ewc): these weights
    # are where the penalty starts to weigh against the new job's loss.
    "ewc-10000": Variant("ewc", {"ewc_weight": 1e4}, "LoRA + online EWC, weight 10^4"),
    "ewc-100000": Variant("ewc", {"ewc_weight": 1e5}, "LoRA + online EWC, weight 10^5"),
    "multitask": Variant("multitask", what="upper bound: one LoRA job on all tasks at once"),
    "ilora": Variant("ilora", what="I-LoRA (slow adapter served)"),
    "ilora-no-consistency": Variant("ilora", {"consistency_weight": 0.0}, "I-LoRA, consistency weight 0"),
    "ilora-lambda-0.99": Variant("ilora", {"slow_lambda": 0.99}, "I-LoRA, slow lambda 0.99"),
    "ilora-lambda-0.999": Variant("ilora", {"slow_lambda": 0.999}, "I-LoRA, slow lambda 0.999"),
    "titans": Variant("titans", what="Titans neural memory + replay"),
    "trc": Variant("trc", what="TRC columns, router, hippocampal store, controller"),
    "trc-read-only": Variant("trc", {**_NO_REPLAY, **_NO_DISTILLATION}, "TRC, store read only"),
    "trc-no-distillation": Variant("trc", _NO_DISTILLATION, "TRC without distillation"),
    "trc-no-router": Variant("trc", {"router": False}, "TRC, every column gate 1/K"),
}

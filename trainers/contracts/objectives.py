"""A job's training objective: OpenAI's job `method` (`supervised` or `dpo`). Torch-free.

Not to be confused with the lineage's continual-learning method (`trainers.contracts.methods`:
lora, replay, ewc, ilora, titans, trc), which says *how* a lineage keeps what it learned; the objective
says *what* one job's rows teach: to write the completions (`supervised`, token cross-entropy), or
to prefer one answer over another (`dpo`, Direct Preference Optimization; docs/training.md).
"""

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DPO_BETA_AUTO", "DPO_BETA_LIMITS", "OBJECTIVES", "Objective", "beta_problem"]

OBJECTIVES = ("supervised", "dpo")
DPO_BETA_AUTO = 0.1  # what "auto" resolves to: the DPO paper's and OpenAI's usual value
DPO_BETA_LIMITS = (0.0, 10.0)  # beta must be above the first and at most the second


def beta_problem(value: Any) -> str | None:
    """Why `value` is not a resolved DPO beta, or None when it is one."""
    low, high = DPO_BETA_LIMITS
    if type(value) in (int, float) and low < value <= high:
        return None
    return f"must be a number above {low:g} and at most {high:g}"


@dataclass(frozen=True)
class Objective:
    """What a job trains for.

    Attributes:
        type: One of `OBJECTIVES`: `supervised` (rows are examples to imitate) or `dpo` (rows are
            preference pairs).
        beta: DPO only: how far the trained model may move from its parent to prefer the
            preferred outputs (higher: less far). None for `supervised`.
    """

    type: str = "supervised"
    beta: float | None = None

    def __post_init__(self) -> None:
        if self.type not in OBJECTIVES:
            raise ValueError(f"objective.type must be one of {', '.join(OBJECTIVES)}, got {self.type!r}")
        if self.type == "supervised" and self.beta is not None:
            raise ValueError("objective.beta is for dpo only")
        if self.type == "dpo" and (problem := beta_problem(self.beta)):
            raise ValueError(f"objective.beta {problem}, got {self.beta!r}")

    @classmethod
    def from_json(cls, data: Any) -> "Objective":
        """Read what `to_json` wrote (None, as jobs stored before objectives, is `supervised`).

        Raises:
            ValueError: Not such an object, or a bad value.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict) or set(data) - {"type", "beta"}:
            raise ValueError(f'objective must be an object with "type" and "beta", got {data!r}')
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """`{"type": ..., "beta": ...}`, as a job row and spec.json hold it."""
        return asdict(self)

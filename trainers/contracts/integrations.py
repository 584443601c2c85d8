"""A job's experiment-tracker integrations (OpenAI's job `integrations`), typed once for the
control plane and the trainer. Torch-free.

OpenAI's shape is `{"type": "wandb", "wandb": {"project", "name", "entity", "tags"}}`; Neuroplast
takes `mlflow` and `tensorboard` in the same shape. The trainer logs each metrics line to every
integration of its job (`trainers/trackers.py`).
"""

import importlib.util
from dataclasses import dataclass, field
from typing import Any

__all__ = ["INTEGRATION_PACKAGES", "Integration", "missing_package"]

# type -> the Python modules that provide it (any one of them will do)
INTEGRATION_PACKAGES: dict[str, tuple[str, ...]] = {
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
    "tensorboard": ("tensorboard", "tensorboardX"),
}


@dataclass(frozen=True)
class Integration:
    """Where a job's metrics are also logged.

    Attributes:
        type: One of `INTEGRATION_PACKAGES`.
        project: The W&B project, the MLflow experiment, or the TensorBoard run folder's parent.
        name: The run's name (None: the tracker's default; TensorBoard: the job id).
        entity: The W&B entity (team or user); unused by the others.
        tags: The run's tags.
    """

    type: str
    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.type not in INTEGRATION_PACKAGES:
            raise ValueError(
                f"integration type must be one of {', '.join(INTEGRATION_PACKAGES)}, got {self.type!r}"
            )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Integration":
        """Read one as spec.json holds it (`dataclasses.asdict`)."""
        return cls(**data)


def missing_package(integration_type: str) -> str | None:
    """The package to install for `integration_type` in this Python environment, or None when one
    of its modules can be imported."""
    modules = INTEGRATION_PACKAGES[integration_type]
    if any(importlib.util.find_spec(module) is not None for module in modules):
        return None
    return modules[0]

"""The continual-learning methods a lineage can use. Torch-free: the control plane imports it.

Adding a method: its folder under `trainers/methods/`, one line in `METHODS`, one row in the
shared test matrix, one entry in `docs/methods.md`.
"""

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

from trainers.methods.checks import MethodConfigError
from trainers.methods.ilora.config import IloraConfig
from trainers.methods.lora.config import LoraConfig
from trainers.methods.replay.config import ReplayConfig
from trainers.methods.titans.config import TitansConfig
from trainers.methods.trc.config import TrcConfig

__all__ = [
    "METHODS",
    "MethodConfigError",
    "MethodSpec",
    "available_methods",
    "load_method",
    "method_config",
    "resolve_method_config",
    "version_loader",
]


@dataclass(frozen=True)
class MethodSpec:
    """How to find a method.

    Attributes:
        config: The method's config dataclass (torch-free).
        method: `"module:Class"` of the class implementing `trainers.interface.ContinualMethod`,
            imported only when a trainer needs it.
        loader: `"module:function"` that loads a published version for inference,
            `load(base_model: PreTrainedModel, version_dir: Path) -> nn.Module`; None for methods
            whose version is the plain PEFT adapter in `adapter/` (see `trainers.servable`).
    """

    config: type
    method: str
    loader: str | None = None


METHODS = {
    "lora": MethodSpec(config=LoraConfig, method="trainers.methods.lora.method:LoraMethod"),
    "replay": MethodSpec(config=ReplayConfig, method="trainers.methods.replay.method:ReplayMethod"),
    "ilora": MethodSpec(config=IloraConfig, method="trainers.methods.ilora.method:IloraMethod"),
    "titans": MethodSpec(
        config=TitansConfig,
        method="trainers.methods.titans.method:TitansMethod",
        loader="trainers.methods.titans.layer:load_version",
    ),
    "trc": MethodSpec(
        config=TrcConfig,
        method="trainers.methods.trc.method:TrcMethod",
        loader="trainers.methods.trc.model:load_version",
    ),
}


def available_methods() -> list[str]:
    """Names of the methods a lineage can use, sorted."""
    return sorted(METHODS)


def resolve_method_config(method_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate a method config and fill in its defaults.

    Args:
        method_type: A method name, e.g. `"lora"`.
        config: The user's fields (possibly none).

    Returns:
        Every field of the method's config, as plain JSON values.

    Raises:
        MethodConfigError: Unknown method (`param="method.type"`), unknown field or bad value
            (`param="method.<type>.<field>"`).
    """
    spec = _spec(method_type)
    if not isinstance(config, dict):
        raise MethodConfigError(f"method.{method_type}", f"must be an object, got {config!r}")
    fields = {field.name for field in dataclasses.fields(spec.config)}
    for name in config:
        if name not in fields:
            raise MethodConfigError(
                f"method.{method_type}.{name}",
                f"unknown field; {method_type} accepts {', '.join(sorted(fields))}",
            )
    try:
        resolved = spec.config(**config)
    except MethodConfigError as error:
        raise MethodConfigError(f"method.{method_type}.{error.param}", error.message) from error
    return dataclasses.asdict(resolved)


def load_method(method_type: str) -> type:
    """Import and return the class that implements `method_type` (imports torch).

    Raises:
        MethodConfigError: Unknown method.
    """
    module_name, class_name = _spec(method_type).method.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def version_loader(method_type: str) -> str | None:
    """The `"module:function"` that loads a version of `method_type`, or None for a PEFT adapter."""
    return _spec(method_type).loader


def method_config(method_type: str, config: dict[str, Any]) -> Any:
    """Like `resolve_method_config`, but returns the config dataclass itself (for trainers)."""
    return _spec(method_type).config(**resolve_method_config(method_type, config))


def _spec(method_type: str) -> MethodSpec:
    if method_type not in METHODS:
        raise MethodConfigError(
            "method.type",
            f"unknown method {method_type!r}; available: {', '.join(available_methods())}",
        )
    return METHODS[method_type]

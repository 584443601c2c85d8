"""The continual-learning methods a lineage can use, and a lineage's method as a typed value.

Torch-free: the control plane resolves a user's `{"type": ..., <type>: {fields}}` into a `Method`
once, when the lineage is created (unknown fields, bad values and the defaults are settled
there), stores `Method.fields`, and every job carries it to the trainer inside its `JobSpec`.
Each method's config dataclass lives in its own folder (`trainers/methods/<name>/config.py`,
torch-free); this registry only names it, with the classes a trainer imports by name.

Adding a method: its folder under `trainers/methods/`, one line in `METHODS`, one row in the
shared test matrix, one entry in `docs/methods.md`.
"""

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

from trainers.methods.checks import MethodConfigError
from trainers.methods.ewc.config import EwcConfig
from trainers.methods.ilora.config import IloraConfig
from trainers.methods.lora.config import LoraConfig
from trainers.methods.replay.config import ReplayConfig
from trainers.methods.titans.config import TitansConfig
from trainers.methods.trc.config import TrcConfig

__all__ = [
    "METHODS",
    "Method",
    "MethodConfigError",
    "MethodEntry",
    "available_methods",
    "load_method",
    "objective_problem",
    "version_loader",
]


@dataclass(frozen=True)
class MethodEntry:
    """How to find a method.

    Attributes:
        config: The method's config dataclass (torch-free).
        method: `"module:Class"` of the class implementing `trainers.interface.ContinualMethod`,
            imported only when a trainer needs it.
        loader: `"module:function"` that loads a published version for inference,
            `load(base_model: PreTrainedModel, version_dir: Path) -> nn.Module`; None for methods
            whose version is the plain PEFT adapter in `adapter/` (see `trainers.servable`).
        no_dpo: Why the method cannot train a `dpo` job (`trainers.contracts.objectives`), or None
            when it can: its forward pass gives each row's token log-probabilities from that row
            alone, and what it keeps of a job's rows is what the job teaches.
    """

    config: type
    method: str
    loader: str | None = None
    no_dpo: str | None = None


METHODS = {
    "lora": MethodEntry(config=LoraConfig, method="trainers.methods.lora.method:LoraMethod"),
    "replay": MethodEntry(config=ReplayConfig, method="trainers.methods.replay.method:ReplayMethod"),
    "ilora": MethodEntry(config=IloraConfig, method="trainers.methods.ilora.method:IloraMethod"),
    "ewc": MethodEntry(
        config=EwcConfig,
        method="trainers.methods.ewc.method:EwcMethod",
        no_dpo="ewc estimates each job's Fisher from the token cross-entropy of the job's rows, and a "
        "dpo job's loss is another objective (its pairs against the parent's log-probabilities), "
        "so the Fisher would protect what the job did not optimize; train dpo jobs on a lora, "
        "replay, ilora or titans lineage",
    ),
    "titans": MethodEntry(
        config=TitansConfig,
        method="trainers.methods.titans.method:TitansMethod",
        loader="trainers.methods.titans.layer:load_version",
    ),
    "trc": MethodEntry(
        config=TrcConfig,
        method="trainers.methods.trc.method:TrcMethod",
        loader="trainers.methods.trc.model:load_version",
        no_dpo="trc writes the surprising rows of a job into its hippocampal store and replays them "
        "in later jobs as rows to imitate, so a dpo job would store and teach its non-preferred "
        "outputs; train dpo jobs on a lora, replay, ilora or titans lineage",
    ),
}


@dataclass(frozen=True)
class Method:
    """A lineage's method: its name and its config, validated and with every default filled in.

    Attributes:
        type: A name in `METHODS`, e.g. `"lora"`.
        config: An instance of that method's config dataclass.
    """

    type: str
    config: Any

    @classmethod
    def resolve(cls, method_type: str, fields: Any = None) -> "Method":
        """Check a user's config fields against the method's dataclass and fill in its defaults.

        Args:
            method_type: A method name, e.g. `"lora"`.
            fields: The user's fields (None or `{}` for the defaults).

        Raises:
            MethodConfigError: Unknown method (`param="method.type"`), unknown field or bad value
                (`param="method.<type>.<field>"`).
        """
        config_class = _entry(method_type).config
        fields = {} if fields is None else fields
        if not isinstance(fields, dict):
            raise MethodConfigError(f"method.{method_type}", f"must be an object, got {fields!r}")
        known = {field.name for field in dataclasses.fields(config_class)}
        for name in fields:
            if name not in known:
                raise MethodConfigError(
                    f"method.{method_type}.{name}",
                    f"unknown field; {method_type} accepts {', '.join(sorted(known))}",
                )
        try:
            return cls(method_type, config_class(**fields))
        except MethodConfigError as error:
            raise MethodConfigError(f"method.{method_type}.{error.param}", error.message) from error

    @classmethod
    def from_json(cls, data: Any) -> "Method":
        """Read `{"type": name, name: {fields}}`, as the API and spec.json write it.

        Raises:
            MethodConfigError: Not such an object, or a bad config (as `resolve`).
        """
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise MethodConfigError("method", 'must be an object with a "type"')
        if others := sorted(set(data) - {"type", data["type"]}):
            only = f"only {data['type']!r} may hold a config"
            raise MethodConfigError("method", f"unexpected key(s) {others}: {only}")
        return cls.resolve(data["type"], data.get(data["type"]))

    @property
    def fields(self) -> dict[str, Any]:
        """Every config field as plain JSON values (what a lineage row stores)."""
        return dataclasses.asdict(self.config)

    def to_json(self) -> dict[str, Any]:
        """`{"type": name, name: {fields}}`; `from_json` reads it back."""
        return {"type": self.type, self.type: self.fields}


def available_methods() -> list[str]:
    """Names of the methods a lineage can use, sorted."""
    return sorted(METHODS)


def load_method(method_type: str) -> type:
    """Import and return the class that implements `method_type` (imports torch).

    Raises:
        MethodConfigError: Unknown method.
    """
    module_name, class_name = _entry(method_type).method.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def objective_problem(method_type: str, objective_type: str) -> str | None:
    """Why a lineage of `method_type` cannot train a job of `objective_type`, or None when it can."""
    return _entry(method_type).no_dpo if objective_type == "dpo" else None


def version_loader(method_type: str) -> str | None:
    """The `"module:function"` that loads a version of `method_type`, or None for a PEFT adapter."""
    return _entry(method_type).loader


def _entry(method_type: str) -> MethodEntry:
    if method_type not in METHODS:
        raise MethodConfigError(
            "method.type",
            f"unknown method {method_type!r}; available: {', '.join(available_methods())}",
        )
    return METHODS[method_type]

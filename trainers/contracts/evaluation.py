"""The evaluator's spec: what `python -m trainers.evaluate` is asked to score (docs/evaluation.md).

Written by the worker (`service/worker/evaluation.py`) and the benchmarks, read by `trainers/evaluate.py`.
Torch-free.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EvaluatorSpec", "ModelEvaluation", "ServingTarget"]


@dataclass
class ModelEvaluation:
    """One model to score.

    Attributes:
        version: Its version number; 0 for the base model.
        version_dir: Its folder (a version's or a staging folder), or None for the base model.
        probes: Job id -> that job's probes.json, to score the model on.
        suites: Health-panel suites to run on it (`eval.panel`).
        served_model: Its name at the spec's serving endpoint (`<lineage>@<N>` at the gateway):
            set, the model is asked there, as users are served, instead of loaded here.
    """

    version: int
    version_dir: str | None
    probes: dict[str, str]
    suites: list[str] = field(default_factory=list)
    served_model: str | None = None


@dataclass(frozen=True)
class ServingTarget:
    """The OpenAI-compatible endpoint that serves the evaluations naming a `served_model`.

    Attributes:
        base_url: e.g. `http://127.0.0.1:8000/v1` (the gateway).
        api_key: A bearer key of the lineage's tenant.
    """

    base_url: str
    api_key: str


@dataclass
class EvaluatorSpec:
    """Everything one evaluator process scores, on one lineage's base model.

    Attributes:
        base_model: The lineage's base model (its tokenizer is used throughout).
        evaluations: The models to score, in order.
        serving: Where the evaluations that name a `served_model` are asked.
    """

    base_model: str
    evaluations: list[ModelEvaluation]
    serving: ServingTarget | None = None

    def evaluation(self, version: int) -> ModelEvaluation | None:
        """The evaluation of `version`, if the spec has one."""
        return next((item for item in self.evaluations if item.version == version), None)

    def to_json(self) -> dict[str, Any]:
        """The spec as its file holds it; `from_dict` reads it back."""
        return asdict(self)

    def write(self, path: Path) -> Path:
        """Write the spec to `path` and return the path."""
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluatorSpec":
        """The inverse of `to_json`."""
        serving = data.get("serving")
        return cls(
            base_model=data["base_model"],
            evaluations=[ModelEvaluation(**item) for item in data["evaluations"]],
            serving=ServingTarget(**serving) if serving else None,
        )

    @classmethod
    def load(cls, path: Path) -> "EvaluatorSpec":
        """Read a spec file."""
        return cls.from_dict(json.loads(path.read_text()))

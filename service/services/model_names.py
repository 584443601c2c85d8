"""The names of a lineage's versions: `<lineage>@<N>`, or `<lineage>@<N>-<suffix>` when the job
that trained version N had a `suffix` other than the lineage's name (a job on a base model whose
suffix named the lineage it started adds nothing). Both address version N; a name with another
suffix than the version's addresses nothing (docs/jobs.md)."""

import re
from dataclasses import dataclass

__all__ = ["ModelName", "parse_model_name", "version_name"]

_VERSION = re.compile(r"(?P<number>[0-9]{1,10})(?:-(?P<suffix>[A-Za-z0-9._-]{1,64}))?")


@dataclass(frozen=True)
class ModelName:
    """A `model` as a request names it: a lineage, and maybe one of its versions and that one's suffix."""

    lineage: str
    number: int | None = None
    suffix: str | None = None


def version_name(lineage: str, number: int, suffix: str | None) -> str:
    """The name of version `number` of `lineage`, trained by a job with `suffix` (or none)."""
    return f"{lineage}@{number}-{suffix}" if suffix and suffix != lineage else f"{lineage}@{number}"


def parse_model_name(model: str) -> ModelName | None:
    """`model` read as `<lineage>`, `<lineage>@<N>` or `<lineage>@<N>-<suffix>`; None when it is
    none of them (N from 1 to 2**31 - 1, ASCII digits only)."""
    lineage, at, version = model.partition("@")
    if not at:
        return ModelName(lineage)
    match = _VERSION.fullmatch(version)
    if match is None or not 0 < int(match["number"]) < 2**31:
        return None
    return ModelName(lineage, int(match["number"]), match["suffix"])

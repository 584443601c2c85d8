"""Filesystem locations that user input reaches: local base models and store folders.

Local base models must lie under a configured root (`Settings.base_model_roots`), named by their
path or, where a job names a base model (`find_base_model`), by their folder's or model's name;
store folders are built only from names that passed their patterns, and are checked to stay under their root.
"""

import json
import re
from pathlib import Path

from service.errors import ApiError

# Hugging Face repo ids: `name` or `owner/name`, no '..' (huggingface_hub's validate_repo_id).
HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$"
LOCAL_PREFIXES = ("/", "./", "../", "~")
BASE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"  # a folder or catalog name: no path separators
PROVENANCE = "provenance.json"  # written beside a fetched or converted model (trainers/base_model/fetch.py)


def resolve_base_model(base_model: str, roots: list[Path], hub_models: list[str]) -> str:
    """The base model as stored: a hub id as given, a local folder as its resolved absolute path.

    Args:
        base_model: What the lineage names.
        roots: Folders a local model may lie under.
        hub_models: The hub ids an operator allowed (workers download them).

    Raises:
        ApiError: 400 when a hub id is malformed or not allowed, or a local path lies outside
            every root or holds no model (`config.json`).
    """
    if not base_model.startswith(LOCAL_PREFIXES):
        if not (re.fullmatch(HUB_ID, base_model) and ".." not in base_model):
            raise _invalid(f"'{base_model}' is neither a hub id ('owner/name') nor an absolute local path.")
        if base_model not in hub_models:  # a tenant must not make workers download what it likes
            raise _invalid(
                f"'{base_model}' is not among the hub models this service may download "
                "(NEUROPLAST_HUB_MODELS); use a local folder under the model roots "
                "(neuroplast base fetch, neuroplast base convert)."
            )
        return base_model
    try:
        path = Path(base_model).expanduser().resolve()  # symlinks followed: the target must be inside
    except (ValueError, RuntimeError, OSError) as error:  # a NUL byte, an unknown ~user, a loop
        raise _invalid(f"'{base_model}' is not a usable path ({error}).") from error
    if not any(path.is_relative_to(root) for root in roots):
        raise _invalid(
            f"'{base_model}' is outside the folders local models may come from "
            "(NEUROPLAST_MODEL_ROOTS and the data dir)."
        )
    if not (path / "config.json").is_file():
        raise _invalid(f"No model found at '{base_model}' (expected a folder with config.json).")
    return str(path)


def find_base_model(name: str, roots: list[Path], hub_models: list[str]) -> str | None:
    """The base model a bare name stands for, as stored; None when the service knows none by that name.

    A name is a hub id the operator allowed, or a model folder directly under a model root or one
    level below it (`{data dir}/models/NAME`), or a folder there that `neuroplast base fetch` or
    `base convert` wrote for the model of that name (its `provenance.json`).

    Raises:
        ApiError: 400 when the name fits models in more than one folder.
    """
    if name in hub_models:
        return name
    if not re.fullmatch(BASE_NAME, name):
        return None
    found: set[Path] = set()
    for root in roots:
        for pattern in (name, f"*/{name}", PROVENANCE, f"*/{PROVENANCE}", f"*/*/{PROVENANCE}"):
            for path in root.glob(pattern):
                folder = path.parent if path.name == PROVENANCE else path
                if path.name == PROVENANCE and _provenance_name(path) != name:
                    continue
                if (folder / "config.json").is_file():
                    found.add(folder.resolve())
    if len(found) > 1:
        raise ApiError(
            400,
            f"'{name}' names models in several folders ({', '.join(sorted(map(str, found)))}); "
            "name the lineage's base model by its path (POST /v1/lineages).",
            param="model",
            code="ambiguous_base_model",
        )
    return resolve_base_model(str(found.pop()), roots, hub_models) if found else None


def folder_under(root: Path, *names: str) -> Path:
    """`root/name/...` (e.g. `{store}/{tenant}/{lineage}`), refusing any name that could leave `root`.

    Tenant and lineage names are checked against their patterns when they are created; this is the
    last line of defence where they become a path.
    """
    for name in names:
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
            raise ValueError(f"refusing the path segment {name!r}")
    folder = root.resolve().joinpath(*names)
    if not folder.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{folder} is outside {root}")
    return folder


def _provenance_name(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("model")  # type: ignore[no-any-return]
    except (OSError, ValueError, AttributeError):
        return None


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, param="base_model", code="invalid_base_model")

"""Filesystem locations that user input reaches: local base models and store folders.

Local base models must lie under a configured root (`Settings.base_model_roots`); store folders
are built only from names that passed their patterns, and are checked to stay under their root.
"""

import re
from pathlib import Path

from service.errors import ApiError

# Hugging Face repo ids: `name` or `owner/name`, no '..' (huggingface_hub's validate_repo_id).
HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$"
LOCAL_PREFIXES = ("/", "./", "../", "~")


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


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, param="base_model", code="invalid_base_model")

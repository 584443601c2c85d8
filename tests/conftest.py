"""Fixtures every test tier shares. Tests are hermetic: no hub, loopback only, temp folders."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach a hub

# Longest first: `make test` hands whole files to two workers in collection order
# (`--no-loadscope-reorder`), and the real-model file alone takes about 12 minutes; started last,
# it kept one core idle to the end. The markers stand in for the files' lengths.
_LONGEST_FIRST = ("real_model", "vllm", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a test marked `real_model` first, then `vllm`, then `slow`, then the rest; each
    file's tests stay together and in order (its module fixtures are set up once)."""

    def rank(item: pytest.Item) -> int:
        marked = [name for name in _LONGEST_FIRST if item.get_closest_marker(name)]
        return _LONGEST_FIRST.index(marked[0]) if marked else len(_LONGEST_FIRST)

    files: dict[Path, int] = {}
    for item in items:
        files[item.path] = min(files.get(item.path, len(_LONGEST_FIRST)), rank(item))
    items.sort(key=lambda item: files[item.path])


@pytest.fixture(scope="session", autouse=True)
def model_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Local base models may come from this run's temp folders (docs/security.md), in-process and in
    every service a test starts (they inherit the environment)."""
    root = tmp_path_factory.getbasetemp()
    os.environ["NEUROPLAST_MODEL_ROOTS"] = json.dumps([str(root)])
    yield root
    del os.environ["NEUROPLAST_MODEL_ROOTS"]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 64) with the project's tokenizer, built in-process."""
    from trainers.base_model.build import build_base

    return build_base(tmp_path_factory.mktemp("tiny-base"), preset="tiny", log=lambda line: None)


@pytest.fixture(scope="session")
def nan_base(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """`tiny_base` with one NaN weight: any job on it has a NaN loss at step 1 (a diverged job)."""
    from bench.soak import nan_base

    return nan_base(tiny_base, tmp_path_factory.mktemp("nan-base"))

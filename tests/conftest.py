"""Fixtures every test tier shares. Tests are hermetic: no hub, loopback only, temp folders."""

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach a hub


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer Llama (hidden 64) with the project's tokenizer, built in-process."""
    from trainers.base_model.build import build_base

    return build_base(tmp_path_factory.mktemp("tiny-base"), preset="tiny", log=lambda line: None)

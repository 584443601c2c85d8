"""Schemathesis against the service's own OpenAPI schema, over real HTTP on loopback: no 5xx and no
answer that breaks the schema (status codes, content types, bodies, the error envelope), over at
least 500 generated requests.

Every operation gets valid (positive) and invalid (negative) requests with random parameters, and
those with path parameters also valid requests aimed at objects that exist.
"""

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from service.db import Database
from service.main import create_app
from service.services.keys import create_key
from service.settings import Settings
from tests.service.conftest import FACTS
from tests.service.serving import conftest as serving
from tests.service.serving.fake_vllm import BASE, fake_vllm, running

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
RUNS = (  # (generation mode, aimed at existing objects, examples per operation)
    (GenerationMode.POSITIVE, False, 20),
    (GenerationMode.NEGATIVE, False, 12),
    (GenerationMode.POSITIVE, True, 8),
)


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str], dict[str, str], FastAPI]]:
    """The API on loopback with a fake vLLM behind its gateway; an admin key of tenant acme; acme's ids."""
    root = tmp_path_factory.mktemp("fuzz")
    with running(fake_vllm()) as vllm_url:
        config = Settings(
            data_dir=root / "data",
            vllm_urls=[vllm_url],
            webhook_delivery=False,
            max_upload_bytes=64 * 1024,
            hub_models=[BASE],  # the fake vLLM's base model is named as a hub model would be
        )
        config.gateway_requests_per_second = 10_000.0  # the fuzzer is one tenant sending fast
        app = create_app(config)
        database = Database(config.resolved_database_url)
        with running(app) as url:
            with database.session() as session:
                headers = {"Authorization": f"Bearer {create_key(session, 'acme', scope='platform')}"}
            yield url, headers, _populate(url, headers, database), app
        database.dispose()


def _populate(url: str, headers: dict[str, str], database: Database) -> dict[str, str]:
    api = httpx.Client(base_url=f"{url}/v1", headers=headers)
    file_id = api.post("/files", files={"file": ("facts.jsonl", FACTS.encode())}).json()["id"]
    api.post("/lineages", json={"name": "bot", "base_model": BASE}).raise_for_status()
    serving.publish(database, "acme", "bot", 1, "/store/acme/bot/v1")
    job = api.post("/fine_tuning/jobs", json={"model": "bot", "training_file": file_id}).json()["id"]
    check = api.post("/health_checks", json={"lineage": "bot"}).json()["id"]
    webhook = api.post("/webhooks", json={"url": "https://hooks.example.com/np"}).json()["id"]
    return {"file_id": file_id, "name": "bot", "job_id": job, "check_id": check, "webhook_id": webhook}


def test_no_server_errors_and_no_schema_violations(
    service: tuple[str, dict[str, str], dict[str, str], FastAPI],
) -> None:
    url, headers, ids, app = service
    schema = schemathesis.openapi.from_dict(app.openapi())
    # Every request carries the fuzzer's own key (`headers`): the bearer scheme is not a parameter to fuzz.
    schema.config.generation.update(with_security_parameters=False)
    sent: Counter[str] = Counter()
    failures: dict[str, str] = {}
    for mode, aimed, examples in RUNS:
        for result in schema.get_all_operations():
            operation = result.ok()
            params = {p.name for p in operation.path_parameters}
            if aimed and (not params or not params <= ids.keys()):
                continue  # key ids stay random: a real one would revoke the fuzzer's own key
            strategy = operation.as_strategy(
                mode, path_parameters={name: ids[name] for name in params} if aimed else None
            )
            checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
            _fuzz(strategy, examples, url, headers, checks, f"{mode.value} {operation.label}", sent, failures)
    assert not failures, "\n\n".join(f"{label}: {error}" for label, error in failures.items())
    print(f"schemathesis: {sum(sent.values())} requests over {len(sent)} (mode, operation) pairs")
    assert sum(sent.values()) >= 500, sent


def _fuzz(
    strategy: Any,
    examples: int,
    url: str,
    headers: dict[str, str],
    checks: list[Any],
    label: str,
    sent: Counter[str],
    failures: dict[str, str],
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=headers)
        sent[label] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Exception, BaseExceptionGroup) as error:  # collected, reported together
            failures.setdefault(label, str(error)[:1500])

    # Unsatisfiable: nothing to make invalid, e.g. the negative run of an operation without inputs.
    with contextlib.suppress(Unsatisfiable):
        run()

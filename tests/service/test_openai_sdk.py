"""The official `openai` SDK, unmodified, against a running service."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from service.local import LocalService, local_service
from tests.service.conftest import FACTS


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    with local_service(tmp_path_factory.mktemp("sdk"), worker=False) as running:
        yield running


@pytest.fixture
def sdk(service: LocalService) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key=service.key, max_retries=0)


def _lineage(service: LocalService, name: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    response = httpx.post(
        f"{service.url}/v1/lineages",
        headers={"Authorization": f"Bearer {service.key}"},
        json={"name": name, "base_model": str(tmp_path)},
    )
    response.raise_for_status()


def test_files_and_jobs_through_the_sdk(sdk: openai.OpenAI, service: LocalService, tmp_path: Path) -> None:
    _lineage(service, "sdk-bot", tmp_path)
    uploaded = sdk.files.create(file=("facts.jsonl", FACTS.encode()), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(FACTS)
    assert sdk.files.retrieve(uploaded.id).filename == "facts.jsonl"

    created = [
        sdk.fine_tuning.jobs.create(
            model="sdk-bot", training_file=uploaded.id, hyperparameters={"n_epochs": 2}, seed=i
        )
        for i in range(5)
    ]
    assert all(job.status == "queued" for job in created)

    first_page = sdk.fine_tuning.jobs.list(limit=2)
    assert [job.id for job in first_page.data] == [
        created[4].id,
        created[3].id,
    ] and first_page.has_more
    everything = [job.id for job in sdk.fine_tuning.jobs.list(limit=2)]  # the SDK follows `after` cursors
    assert everything[:5] == [job.id for job in reversed(created)]

    retrieved = sdk.fine_tuning.jobs.retrieve(created[0].id)
    assert retrieved.model == "sdk-bot" and retrieved.seed == 0 and retrieved.hyperparameters.n_epochs == 2

    cancelled = sdk.fine_tuning.jobs.cancel(created[0].id)
    assert cancelled.status == "cancelled"
    events = [event.message for event in sdk.fine_tuning.jobs.list_events(created[0].id, limit=1)]
    assert events == [
        "Job cancelled.",
        "Job entered queue.",
        "Probes drawn: 8 recall, 8 recognition, 0 held-out rows (kept out of training).",
        "Validated training file: 8 rows.",
    ]
    assert sdk.fine_tuning.jobs.checkpoints.list(created[0].id).data == []


def test_the_sdk_sends_a_validation_file_and_a_suffix_and_reads_file_content(
    sdk: openai.OpenAI, service: LocalService, tmp_path: Path
) -> None:
    _lineage(service, "sdk-valid", tmp_path)
    training = sdk.files.create(file=("facts.jsonl", FACTS.encode()), purpose="fine-tune")
    validation = sdk.files.create(file=("valid.jsonl", FACTS.encode()), purpose="fine-tune")

    job = sdk.fine_tuning.jobs.create(
        model="sdk-valid", training_file=training.id, validation_file=validation.id, suffix="exp-1"
    )

    assert (job.validation_file, job.suffix, job.result_files) == (validation.id, "exp-1", [])
    assert sdk.files.content(validation.id).text == FACTS
    sdk.fine_tuning.jobs.cancel(job.id)


def test_the_sdk_sends_a_dpo_method_and_reads_it_back(
    sdk: openai.OpenAI, service: LocalService, tmp_path: Path
) -> None:
    _lineage(service, "sdk-dpo", tmp_path)
    pairs = (Path(__file__).resolve().parents[2] / "examples" / "preferences-concise.jsonl").read_bytes()
    uploaded = sdk.files.create(file=("pairs.jsonl", pairs), purpose="fine-tune")

    job = sdk.fine_tuning.jobs.create(
        model="sdk-dpo",
        training_file=uploaded.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2}}},
    )

    assert job.method is not None and job.method.type == "dpo" and job.method.dpo is not None
    assert job.method.dpo.hyperparameters is not None
    assert (job.method.dpo.hyperparameters.beta, job.method.dpo.hyperparameters.n_epochs) == (0.2, 2)
    sdk.fine_tuning.jobs.cancel(job.id)


def test_sdk_errors_carry_the_envelope(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")
    assert missing.value.code == "not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.files.create(file=("bad.jsonl", b'{"text": 1}\nnope\n'), purpose="fine-tune")
    assert bad.value.param == "file" and "line 2" in bad.value.message
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(sdk.base_url), api_key="np_wrong_key", max_retries=0).files.list()


def test_the_sdk_alone_trains_a_base_model_and_pauses_and_resumes_its_job(
    sdk: openai.OpenAI, service: LocalService
) -> None:
    """No lineage created first: the job names a base model the service holds, as OpenAI's do."""
    base = service.data_dir / "models" / "sdk-base"
    base.mkdir(parents=True)
    (base / "config.json").write_text('{"model_type": "llama"}')
    uploaded = sdk.files.create(file=("facts.jsonl", FACTS.encode()), purpose="fine-tune")

    job = sdk.fine_tuning.jobs.create(model="sdk-base", training_file=uploaded.id, suffix="sdk-support")

    assert job.status == "queued" and job.model == "sdk-support"
    assert sdk.fine_tuning.jobs.pause(job.id).status == "paused"
    assert sdk.fine_tuning.jobs.resume(job.id).status == "queued"
    sdk.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.ConflictError) as finished:
        sdk.fine_tuning.jobs.pause(job.id)
    assert finished.value.code == "job_finished"

"""The artifact store on a local folder and on a real S3 server: publish, fetch, checkpoints, reports."""

import json
import os
from pathlib import Path

import pytest
import s3fs

from service.local import free_port
from service.settings import Settings
from service.storage.store import ArtifactStore, StoreUnavailable
from tests.service.storage.s3 import Bucket

# One attempt, a short connect timeout: an unreachable store fails in about a second.
FAIL_FAST = {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}


def _staged(store: ArtifactStore, job_id: str = "ftjob-1", number: int = 1) -> Path:
    """A version as a trainer leaves it in its staging folder."""
    staging = store.staging_dir("acme", "bot", number)
    for relative, content in {
        "adapter/adapter_model.safetensors": os.urandom(2048),
        "adapter/adapter_config.json": b'{"r": 8}',
        "memory/replay.json": b"[]",
        "probes.json": b'{"recall": []}',
        "checkpoints/step-000002/trainer_state.json": b'{"step": 2}',
        "manifest.json": json.dumps({"job_id": job_id, "version": number}).encode(),
    }.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_bytes(content)
    return staging


def _publish(store: ArtifactStore, staging: Path, location: str) -> None:
    """What the worker does: upload (no transaction open), then commit (in the row's transaction)."""
    store.upload(staging, location)
    store.commit(staging, location)


def test_a_published_version_reads_back_whole(store: ArtifactStore) -> None:
    staging = _staged(store)
    adapter = (staging / "adapter" / "adapter_model.safetensors").read_bytes()
    location = store.version_location("acme", "bot", 1)
    assert store.published_job(location) is None

    _publish(store, staging, location)

    assert store.published_job(location) == "ftjob-1"
    assert store.manifest(staging, location)["version"] == 1
    (folder,) = store.fetch(location)
    assert (folder / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert store.local_file(location, "probes.json") == folder / "probes.json"
    assert store.local_file(location, "missing.json") is None


def test_a_local_store_keeps_its_layout(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(Settings(data_dir=tmp_path / "data"))
    staging = _staged(store)
    assert staging == tmp_path / "data" / "store" / "acme" / "bot" / "v1.partial"
    location = store.version_location("acme", "bot", 1)
    _publish(store, staging, location)
    assert location == str(tmp_path / "data" / "store" / "acme" / "bot" / "v1")
    assert store.fetch(location) == [Path(location)]  # read in place, nothing cached
    assert (Path(location) / "checkpoints" / "step-000002").is_dir() and not staging.exists()


def test_s3_versions_land_in_the_bucket_without_checkpoints(tmp_path: Path, bucket: Bucket) -> None:
    store = ArtifactStore.from_settings(_s3_settings(tmp_path / "a", bucket))
    staging = _staged(store)
    assert staging.is_relative_to(tmp_path / "a" / "staging")  # trains into a local folder
    _publish(store, staging, store.version_location("acme", "bot", 1))
    assert bucket.objects() == [
        "acme/bot/v1/adapter/adapter_config.json",
        "acme/bot/v1/adapter/adapter_model.safetensors",
        "acme/bot/v1/manifest.json",
        "acme/bot/v1/memory/replay.json",
        "acme/bot/v1/probes.json",
    ]


def test_s3_a_version_exists_only_once_its_manifest_is_uploaded(
    tmp_path: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore.from_settings(_s3_settings(tmp_path, bucket))
    staging, location = _staged(store), store.version_location("acme", "bot", 1)
    fs = store._filesystem(location)[0]  # the store's (cached) S3 client
    put_file = fs.put_file

    def crash_at_the_manifest(source: str, target: str, **options: object) -> None:
        if target.endswith("manifest.json"):
            raise ConnectionError("the worker died")
        put_file(source, target, **options)

    monkeypatch.setattr(fs, "put_file", crash_at_the_manifest)
    with pytest.raises(ConnectionError):
        store.upload(staging, location)
    monkeypatch.undo()
    assert "acme/bot/v1/adapter/adapter_config.json" in bucket.objects()
    assert store.published_job(location) is None
    with pytest.raises(FileNotFoundError):
        store.fetch(location)
    assert not store.cache.entry(location).exists()

    store.upload(staging, location)  # the re-claimed job publishes, once
    assert store.published_job(location) == "ftjob-1"


def test_published_bytes_never_change(store: ArtifactStore) -> None:
    location = store.version_location("acme", "bot", 1)
    first = _staged(store)
    adapter = (first / "adapter" / "adapter_model.safetensors").read_bytes()
    _publish(store, first, location)
    _publish(store, _staged(store), location)  # a late second attempt of the same job

    (folder,) = store.fetch(location)
    assert (folder / "adapter" / "adapter_model.safetensors").read_bytes() == adapter


def test_s3_a_fetched_version_is_read_from_the_cache(tmp_path: Path, bucket: Bucket) -> None:
    writer = ArtifactStore.from_settings(_s3_settings(tmp_path / "worker", bucket))
    location = writer.version_location("acme", "bot", 1)
    _publish(writer, _staged(writer), location)
    reader = ArtifactStore.from_settings(_s3_settings(tmp_path / "replica", bucket), cache="serving")

    (folder,) = reader.fetch(location)
    assert (
        folder
        == tmp_path
        / "replica"
        / "cache"
        / "serving"
        / "s3"
        / bucket.name
        / "neuroplast"
        / "acme"
        / "bot"
        / "v1"
    )
    assert sorted(path.name for path in folder.iterdir()) == [
        "adapter",
        "manifest.json",
        "memory",
        "probes.json",
    ]
    s3fs.S3FileSystem(endpoint_url=bucket.endpoint).rm(f"{bucket.name}/neuroplast", recursive=True)
    assert reader.fetch(location) == [folder]  # immutable: never downloaded again


def test_s3_a_checkpoint_resumes_on_another_worker(tmp_path: Path, bucket: Bucket) -> None:
    crashed = ArtifactStore.from_settings(_s3_settings(tmp_path / "a", bucket))
    staging, location = _staged(crashed), crashed.version_location("acme", "bot", 1)
    crashed.save_checkpoint(staging, "checkpoints/step-000002", location, "ftjob-1")
    (staging / "checkpoints" / "step-000004").mkdir()
    (staging / "checkpoints" / "step-000004" / "trainer_state.json").write_text('{"step": 4}')
    crashed.save_checkpoint(staging, "checkpoints/step-000004", location, "ftjob-1")
    assert [key for key in bucket.objects() if "checkpoints" in key] == [
        "acme/bot/v1/checkpoints/latest.json",
        "acme/bot/v1/checkpoints/step-000004/trainer_state.json",
    ]

    survivor = ArtifactStore.from_settings(_s3_settings(tmp_path / "b", bucket))
    fresh = survivor.staging_dir("acme", "bot", 1)
    fresh.mkdir(parents=True)
    assert survivor.restore_checkpoint(fresh, location, "ftjob-2") is None  # another job's
    assert survivor.restore_checkpoint(fresh, location, "ftjob-1") == "step-000004"
    restored = fresh / "checkpoints" / "step-000004" / "trainer_state.json"
    assert json.loads(restored.read_text()) == {"step": 4}
    assert sorted(path.name for path in (fresh / "checkpoints").iterdir()) == ["step-000004"]


def test_s3_a_checkpoint_name_that_is_a_path_is_ignored(tmp_path: Path, bucket: Bucket) -> None:
    """`latest.json` comes from the store: a name in it that would leave the staging folder is
    refused, and the job starts afresh instead of writing outside its folder."""
    store = ArtifactStore.from_settings(_s3_settings(tmp_path / "a", bucket))
    staging, location = _staged(store), store.version_location("acme", "bot", 1)
    store.save_checkpoint(staging, "checkpoints/step-000002", location, "ftjob-1")
    latest = f"{bucket.name}/neuroplast/acme/bot/v1/checkpoints/latest.json"
    s3 = s3fs.S3FileSystem(endpoint_url=bucket.endpoint)
    s3.pipe(latest, json.dumps({"job_id": "ftjob-1", "checkpoint": "../../../../escaped"}).encode())

    fresh = tmp_path / "b" / "staging"
    fresh.mkdir(parents=True)
    assert store.restore_checkpoint(fresh, location, "ftjob-1") is None
    assert not list((tmp_path / "b").rglob("*escaped*")) and not (tmp_path / "escaped").exists()


def test_s3_what_a_failed_job_left_is_discarded(tmp_path: Path, bucket: Bucket) -> None:
    store = ArtifactStore.from_settings(_s3_settings(tmp_path, bucket))
    staging, location = _staged(store), store.version_location("acme", "bot", 1)
    store.save_checkpoint(staging, "checkpoints/step-000002", location, "ftjob-1")

    store.discard(location, unless_job="ftjob-1")  # the job itself, resuming
    assert bucket.objects()
    store.discard(location, unless_job="ftjob-2")  # the next job given the failed one's number
    assert bucket.objects() == []


def test_reports_are_stored(store: ArtifactStore) -> None:
    location = store.write_report("acme", "bot", "report-1", '{"verdict": "ok"}', "<html></html>")
    store.upload_reports()
    if store.remote:
        fs = s3fs.S3FileSystem(endpoint_url=store.options["endpoint_url"])
        assert fs.cat(location.removeprefix("s3://") + ".json") == b'{"verdict": "ok"}'
        assert not [path for path in store.spool_root.rglob("*") if path.is_file()]
    else:
        assert Path(location + ".html").read_text() == "<html></html>"


def _s3_settings(data_dir: Path, bucket: Bucket) -> Settings:
    return Settings(data_dir=data_dir, store_url=bucket.url, store_endpoint_url=bucket.endpoint)


def test_s3_an_unreachable_store_fails_as_an_os_error_and_loses_nothing(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        store_url="s3://neuroplast-down/prefix",
        store_endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens
        store_options=FAIL_FAST,
    )
    store = ArtifactStore.from_settings(settings)
    staging, location = _staged(store), store.version_location("acme", "bot", 1)

    with pytest.raises(StoreUnavailable):  # an OSError: the worker treats it like a crash, and lives
        store.published_job(location)
    store.save_checkpoint(staging, "checkpoints/step-000002", location, "ftjob-1")  # training goes on
    store.write_report("acme", "bot", "report-1", "{}", "<html></html>")
    store.upload_reports()
    assert sorted(path.name for path in store.spool_root.rglob("report-*")) == [
        "report-1.html",
        "report-1.json",
    ]

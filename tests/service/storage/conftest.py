"""Stores on a local folder and on a real S3 server (tests/service/storage/s3.py)."""

from pathlib import Path

import pytest

from service.settings import Settings
from service.storage.store import ArtifactStore
from tests.service.storage.s3 import Bucket, bucket, s3_endpoint

__all__ = ["Bucket", "bucket", "s3_endpoint"]


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """The same store API on a local folder and on S3."""
    settings = Settings(data_dir=tmp_path / "data", store_cache_bytes=2**30)
    if request.param == "s3":
        bucket = request.getfixturevalue("bucket")
        settings = Settings(
            data_dir=tmp_path / "data", store_url=bucket.url, store_endpoint_url=bucket.endpoint
        )
    return ArtifactStore.from_settings(settings)

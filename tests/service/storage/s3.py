"""A real S3-compatible server on loopback (moto's server mode) and empty buckets on it.

Fixtures for any test tier that needs S3: import `s3_endpoint` and `bucket` into its conftest.
"""

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Bucket:
    """An empty bucket on the loopback S3 server; credentials come from the AWS env vars."""

    endpoint: str
    name: str

    @property
    def url(self) -> str:
        """A store root inside the bucket."""
        return f"s3://{self.name}/neuroplast"

    def objects(self) -> list[str]:
        """Every object key under the store root, relative to it."""
        import fsspec

        fs = fsspec.filesystem("s3", endpoint_url=self.endpoint, use_listings_cache=False)
        prefix = f"{self.name}/neuroplast/"
        return sorted(key.removeprefix(prefix) for key in fs.find(prefix))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a thread of the test process, on a free loopback port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    import boto3

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")  # moto accepts any; services started by a test inherit them
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    name = f"neuroplast-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return Bucket(s3_endpoint, name)

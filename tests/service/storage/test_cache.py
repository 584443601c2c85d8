"""The local version cache: atomic fills, least-recently-used eviction that spares versions in use."""

import os
import threading
import time
from pathlib import Path

import pytest

from service.storage.cache import VersionCache

STORE = "s3://bucket/prefix/acme/bot"


def _version(size: int, downloads: list[str] | None = None, delay: float = 0.0):  # type: ignore[no-untyped-def]
    """A download function writing a version of `size` bytes (and counting its calls)."""

    def download(folder: Path) -> None:
        if downloads is not None:
            downloads.append(folder.name)
        time.sleep(delay)
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"x" * size)
        (folder / "manifest.json").write_text("{}")

    return download


def test_entries_mirror_their_location(tmp_path: Path) -> None:
    cache = VersionCache(tmp_path, max_bytes=10**6)
    assert cache.entry(f"{STORE}/v3") == tmp_path / "s3" / "bucket" / "prefix" / "acme" / "bot" / "v3"
    with pytest.raises(ValueError):
        cache.entry("s3://bucket/../../etc")


def test_the_least_recently_used_version_is_evicted_first(tmp_path: Path) -> None:
    cache = VersionCache(tmp_path, max_bytes=2500)  # room for two versions of ~1000 bytes
    v1, v2 = cache.fill(f"{STORE}/v1", _version(1000)), cache.fill(f"{STORE}/v2", _version(1000))
    os.utime(v2, (time.time() - 60, time.time() - 60))
    os.utime(v1, (time.time() - 30, time.time() - 30))
    cache.fill(f"{STORE}/v1", _version(1000))  # a hit: v1 is now the most recent
    v3 = cache.fill(f"{STORE}/v3", _version(1000))
    assert (v1.exists(), v2.exists(), v3.exists()) == (True, False, True)
    assert cache.size() <= 2500


def test_versions_in_use_are_never_evicted(tmp_path: Path) -> None:
    cache = VersionCache(tmp_path, max_bytes=1500)
    served = cache.fill(f"{STORE}/v1", _version(1000))
    os.utime(served, (time.time() - 60, time.time() - 60))
    newest = cache.fill(f"{STORE}/v2", _version(1000), keep=[served])
    assert served.exists() and newest.exists()  # over budget rather than pulling a served adapter


def test_a_failed_download_leaves_nothing(tmp_path: Path) -> None:
    cache = VersionCache(tmp_path, max_bytes=10**6)

    def broken(folder: Path) -> None:
        (folder / "manifest.json").write_text("{}")
        raise ConnectionError("store unreachable")

    with pytest.raises(ConnectionError):
        cache.fill(f"{STORE}/v1", broken)
    assert not cache.entry(f"{STORE}/v1").exists()
    assert [path.name for path in cache.entry(f"{STORE}/v1").parent.iterdir()] == []


def test_racing_fills_end_with_one_complete_copy(tmp_path: Path) -> None:
    cache = VersionCache(tmp_path, max_bytes=10**6)
    downloads: list[str] = []
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(cache.fill(f"{STORE}/v1", _version(10, downloads, 0.2)))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(downloads) == 2 and results[0] == results[1]  # both downloaded, one copy stays
    assert sorted(path.name for path in results[0].parent.iterdir()) == ["v1"]
    assert (results[0] / "adapter" / "adapter_model.safetensors").read_bytes() == b"x" * 10

"""A local cache of versions downloaded from a remote artifact store.

Versions are immutable (docs/operations.md), so an entry, once complete, never goes stale: the cache
needs no invalidation, only eviction. An entry is filled atomically: downloaded into a temporary
folder beside it and renamed into place, so a reader never sees half a version, and two processes
filling the same entry at once both end with one complete copy.

Entries mirror their location: `s3://bucket/prefix/acme/bot/v3` is cached in
`{root}/s3/bucket/prefix/acme/bot/v3/`, so two stores never share an entry. Eviction removes the
least recently used entries (a hit touches the entry's folder) once the cache holds more than
`max_bytes`, never one the caller still needs.
"""

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from fsspec.core import split_protocol

__all__ = ["VersionCache"]

_TEMP_PREFIX = ".tmp-"


class VersionCache:
    """Complete version folders under `root`, at most `max_bytes` of them beyond those in use."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def entry(self, location: str) -> Path:
        """Where the version at `location` is (or would be) cached."""
        protocol, path = split_protocol(location)
        parts = [part for part in path.split("/") if part]
        if any(part in (".", "..") for part in parts):
            raise ValueError(f"refusing the location {location!r}")
        return self.root.joinpath(protocol or "file", *parts)

    def fill(self, location: str, download: Callable[[Path], None], keep: Iterable[Path] = ()) -> Path:
        """The cached copy of `location`, made by `download(folder)` into a fresh folder if missing.

        Args:
            location: The version's location in the store.
            download: Writes the version's files into the (empty) folder it is given.
            keep: Entries the caller still needs; eviction spares them and this one.
        """
        final = self.entry(location)
        if final.is_dir():
            os.utime(final)  # used now: the last to be evicted
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(dir=final.parent, prefix=_TEMP_PREFIX))
        try:
            download(temp)
            try:
                temp.rename(final)
            except OSError:  # another process filled it first: its copy holds the same bytes
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        self.evict(keep={final, *keep})
        return final

    def evict(self, keep: Iterable[Path] = ()) -> list[Path]:
        """Remove least recently used entries until the cache fits `max_bytes`; the removed entries."""
        spared = {path.resolve() for path in keep}
        entries = sorted(self._entries(), key=lambda entry: entry.stat().st_mtime)
        sizes = {entry: _size(entry) for entry in entries}
        total = sum(sizes.values())
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if entry.resolve() in spared:
                continue
            # Renamed away first, so no reader ever finds a half-removed entry.
            doomed = entry.with_name(f"{_TEMP_PREFIX}evicted-{entry.name}-{time.monotonic_ns()}")
            with contextlib.suppress(FileNotFoundError):
                entry.rename(doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                total -= sizes[entry]
                removed.append(entry)
        return removed

    def size(self) -> int:
        """Bytes held by complete entries."""
        return sum(_size(entry) for entry in self._entries())

    def _entries(self) -> list[Path]:
        """Complete entries: every version has a manifest.json (a version exists once it does)."""
        if not self.root.exists():
            return []
        return [
            manifest.parent
            for manifest in self.root.rglob("manifest.json")
            if not any(part.startswith(_TEMP_PREFIX) for part in manifest.relative_to(self.root).parts)
        ]


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

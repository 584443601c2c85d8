"""The artifact store: versions, checkpoints and reports under one root, a folder or an fsspec URL.

Layout under the root (docs/operations.md, "Artifact store"):

    {tenant}/{lineage}/v{N}/   adapter/, memory/, probes.json, manifest.json, checkpoints/
    {tenant}/{lineage}/reports/{report id}.json and .html

A version exists once its `manifest.json` does: publishing writes it last. Each version's
location (a local path, or a URL such as `s3://bucket/prefix/acme/bot/v3`) is kept on its
database row, so versions stay readable after the store's root changes.

On a local folder nothing moves that did not move before: a trainer writes `v{N}.partial/` beside
the published versions and publishing renames it. On a remote store a trainer writes into a local
staging folder (`{data_dir}/staging/...`); publishing uploads it, manifest last; checkpoints are
uploaded as the trainer writes them, so another worker can resume the job; and whatever a trainer,
the evaluator or a replica reads is first downloaded into a `VersionCache`.
"""

import functools
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import fsspec
from fsspec.core import split_protocol

from service.services.paths import folder_under
from service.settings import Settings
from service.storage.cache import VersionCache

__all__ = ["MANIFEST", "ArtifactStore", "StoreUnavailable"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"  # in a remote version's checkpoints/: the newest completely uploaded one
CHECKPOINT_NAME = re.compile(r"step-\d{6}")  # as trainers/checkpoint.py names them
LOCAL_PROTOCOLS = (None, "file", "local")


class StoreUnavailable(OSError):
    """The remote store failed or could not be reached."""


def _remote_io(method: Callable[P, R]) -> Callable[P, R]:
    """Any failure of a remote store reaches the caller as an OSError: fsspec backends raise types
    of their own (botocore's `EndpointConnectionError` when S3 is unreachable, for one)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except OSError:
            raise
        except Exception as error:
            raise StoreUnavailable(f"artifact store: {error!r}") from error

    return wrapper


class ArtifactStore:
    """One store root and, for a remote root, the local folders that stand in for it.

    Args:
        root: A local folder or an fsspec URL (`s3://bucket/prefix`).
        options: fsspec options of a remote root (`endpoint_url`, `key`, `secret`, ...).
        staging_root: Where trainers write versions before a remote publish.
        cache: Where versions read from a remote root are kept.
        spool_root: Reports waiting for their upload (written inside a transaction, sent after).
    """

    def __init__(
        self,
        root: str,
        options: dict[str, Any],
        staging_root: Path,
        cache: VersionCache,
        spool_root: Path,
    ) -> None:
        protocol, path = split_protocol(root)
        self.remote = protocol not in LOCAL_PROTOCOLS
        self.root = root.rstrip("/") if self.remote else str(Path(path).resolve())
        self.options = options
        self.staging_root = staging_root
        self.cache = cache
        self.spool_root = spool_root

    @classmethod
    def from_settings(cls, settings: Settings, cache: str = "store") -> "ArtifactStore":
        """The configured store; `cache` names this process's cache folder under `cache_dir`.

        Workers use `store`, the serving tier `serving`: each evicts only what it put there.
        """
        options = dict(settings.store_options)
        if settings.store_endpoint_url:
            options["endpoint_url"] = settings.store_endpoint_url
        return cls(
            settings.store_url or str(settings.artifact_dir),
            options,
            staging_root=settings.data_dir.resolve() / "staging",
            cache=VersionCache(settings.cache_dir / cache, settings.store_cache_bytes),
            spool_root=settings.data_dir.resolve() / "spool",
        )

    # Where things are ----------------------------------------------------------------------------

    def version_location(self, tenant: str, lineage: str, number: int) -> str:
        """Where version `number` of a lineage is published."""
        return self._join(tenant, lineage, f"v{number}")

    def staging_dir(self, tenant: str, lineage: str, number: int) -> Path:
        """The local folder a trainer writes version `number` into."""
        root = self.staging_root if self.remote else Path(self.root)
        return folder_under(root, tenant, lineage) / f"v{number}.partial"

    # Versions --------------------------------------------------------------------------------------

    @_remote_io
    def published_job(self, location: str) -> str | None:
        """The job whose version is published at `location`, or None while it has no manifest."""
        manifest = self._read_json(location, MANIFEST)
        return None if manifest is None else manifest.get("job_id")

    @_remote_io
    def upload(self, staging: Path, location: str) -> None:
        """Upload the version in `staging` to a remote `location`, manifest last; then it exists.

        Checkpoints are left out (uploaded as they were written). A version that exists already
        (an earlier attempt of the job got this far) is not written again: published bytes never
        change. Nothing to do for a local store, whose `commit` publishes.
        """
        if not self.remote or self.published_job(location) is not None:
            return
        fs, base = self._filesystem(location)
        for path in sorted(path for path in staging.rglob("*") if path.is_file()):
            relative = path.relative_to(staging).as_posix()
            if relative != MANIFEST and not relative.startswith(f"{CHECKPOINTS}/"):
                fs.put_file(str(path), f"{base}/{relative}")
        fs.put_file(str(staging / MANIFEST), f"{base}/{MANIFEST}")

    def commit(self, staging: Path, location: str) -> None:
        """Publish a local version: rename `staging` to `location` (kept if it exists already).

        Meant for the transaction that adds the version's row, like the lease check it follows.
        """
        if not self.remote and not Path(location).exists():
            os.replace(staging, location)

    @_remote_io
    def manifest(self, staging: Path, location: str) -> dict[str, Any]:
        """The version's manifest, from `staging` while it is there, else from the store."""
        if (staging / MANIFEST).exists():
            return dict(json.loads((staging / MANIFEST).read_text()))
        manifest = self._read_json(location, MANIFEST)
        if manifest is None:
            raise FileNotFoundError(f"no version at {location} (no {MANIFEST})")
        return manifest

    def local_version(self, location: str) -> Path:
        """Where the version at `location` can be read here (after `fetch` for a remote one)."""
        if self._is_local(location):
            return Path(split_protocol(location)[1])
        return self.cache.entry(location)

    def local_file(self, location: str, name: str) -> Path | None:
        """A file of a version as readable here (after `fetch`), or None when the version lacks it."""
        path = self.local_version(location) / name
        return path if path.exists() else None

    @_remote_io
    def fetch(self, *locations: str, keep: Iterable[Path] = ()) -> list[Path]:
        """Local copies of whole versions (checkpoints left out), downloaded when not cached yet.

        Args:
            locations: The versions' locations.
            keep: Other cached versions still in use, which eviction must spare.
        """
        folders = [self.local_version(location) for location in locations]
        for location in locations:
            if not self._is_local(location):
                download = functools.partial(self._download, location)
                self.cache.fill(location, download, keep=[*folders, *keep])
        return folders

    @_remote_io
    def discard(self, location: str, unless_job: str | None = None) -> None:
        """Remove what a remote `location` holds unless it is `unless_job`'s (published or checkpointed).

        For a version number no version row holds: a failed job's number is given to the next job
        of its lineage, which must not resume from, or keep, what the failed one left.
        """
        if self._is_local(location):
            return
        latest = self._read_json(location, f"{CHECKPOINTS}/{LATEST}") or {}
        owner = self.published_job(location) or latest.get("job_id")
        if unless_job is not None and owner == unless_job:
            return
        fs, base = self._filesystem(location)
        if fs.exists(base):
            fs.rm(base, recursive=True)

    # Checkpoints -----------------------------------------------------------------------------------

    def save_checkpoint(self, staging: Path, relative: str, location: str, job_id: str) -> None:
        """Upload the checkpoint the trainer just wrote (`staging/relative`), then name it the newest.

        Checkpoints of a local store are already in the store. A checkpoint the trainer removed
        before it was uploaded (it keeps only the newest ones), or one the store refused, is
        skipped: a newer one follows, and the job can still resume on this machine.
        """
        if not self.remote:
            return
        try:
            self._upload_checkpoint(staging / relative, location, job_id)
        except FileNotFoundError:
            log.info("checkpoint %s was replaced before its upload", relative)
        except OSError as error:
            log.warning("checkpoint %s not uploaded: %r", relative, error)

    @_remote_io
    def restore_checkpoint(self, staging: Path, location: str, job_id: str) -> str | None:
        """Download job `job_id`'s newest uploaded checkpoint into `staging/checkpoints/` if it is missing.

        Returns:
            The checkpoint's name, or None when the store holds none of this job.
        """
        if not self.remote:
            return None
        latest = self._read_json(location, f"{CHECKPOINTS}/{LATEST}")
        if latest is None or latest.get("job_id") != job_id:
            return None
        name = str(latest.get("checkpoint"))
        if not CHECKPOINT_NAME.fullmatch(name):  # a name from the store never becomes a path unchecked
            log.warning("ignoring %s/%s/%s: %r is no checkpoint name", location, CHECKPOINTS, LATEST, name)
            return None
        target = staging / CHECKPOINTS / name
        if target.exists():
            return name
        temp = staging / CHECKPOINTS / f".tmp-download-{name}"  # the trainer reads complete names only
        shutil.rmtree(temp, ignore_errors=True)
        fs, base = self._filesystem(location)
        source = f"{base}/{CHECKPOINTS}/{name}"
        for remote in fs.find(source):
            path = temp / remote[len(source) + 1 :]
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(path))
        temp.rename(target)
        return name

    @_remote_io
    def _upload_checkpoint(self, folder: Path, location: str, job_id: str) -> None:
        fs, base = self._filesystem(location)
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        if not files:
            raise FileNotFoundError(folder)
        target = f"{base}/{CHECKPOINTS}/{folder.name}"
        for path in files:
            fs.put_file(str(path), f"{target}/{path.relative_to(folder).as_posix()}")
        with fs.open(f"{base}/{CHECKPOINTS}/{LATEST}", "w") as marker:
            json.dump({"job_id": job_id, "checkpoint": folder.name}, marker)
        for older in fs.ls(f"{base}/{CHECKPOINTS}", detail=False):
            if Path(older).name not in (folder.name, LATEST):
                fs.rm(older, recursive=True)

    # Reports ---------------------------------------------------------------------------------------

    def write_report(self, tenant: str, lineage: str, report_id: str, body: str, html: str) -> str:
        """Store a report as `.json` and `.html`; returns its location (without the suffix).

        Called inside the transaction that adds the report's row: a remote report is written to
        the spool and uploaded by `upload_reports` after the commit.
        """
        location = self._join(tenant, lineage, "reports", report_id)
        folder = folder_under(self.spool_root if self.remote else Path(self.root), tenant, lineage, "reports")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{report_id}.json").write_text(body)
        (folder / f"{report_id}.html").write_text(html)
        return location

    def upload_reports(self) -> None:
        """Upload every spooled report (also those a crash or an outage left behind), then drop them
        from the spool. A report that fails to upload stays spooled for the next call; the
        database holds every report anyway (the API serves them from there)."""
        if not self.remote or not self.spool_root.exists():
            return
        for path in sorted(path for path in self.spool_root.rglob("*") if path.is_file()):
            try:
                self._put(path, f"{self.root}/{path.relative_to(self.spool_root).as_posix()}")
                path.unlink()
            except FileNotFoundError:  # another worker sharing this data dir uploaded it
                continue
            except OSError as error:
                log.warning("report %s not uploaded yet: %r", path.name, error)

    # Helpers ---------------------------------------------------------------------------------------

    @_remote_io
    def _put(self, path: Path, location: str) -> None:
        fs, target = self._filesystem(location)
        fs.put_file(str(path), target)

    def _join(self, *names: str) -> str:
        if not self.remote:
            return str(folder_under(Path(self.root), *names))
        folder_under(Path("/"), *names)  # the same checks on every name
        return "/".join([self.root, *names])

    def _is_local(self, location: str) -> bool:
        return split_protocol(location)[0] in LOCAL_PROTOCOLS

    def _filesystem(self, location: str) -> tuple[fsspec.AbstractFileSystem, str]:
        """The filesystem of `location` and its path there."""
        protocol, path = split_protocol(location)
        if protocol in LOCAL_PROTOCOLS:
            return fsspec.filesystem("file"), path
        # Listings are not cached: another worker may have written a manifest since.
        return fsspec.filesystem(protocol, use_listings_cache=False, **self.options), path.rstrip("/")

    def _read_json(self, location: str, name: str) -> dict[str, Any] | None:
        fs, base = self._filesystem(location)
        try:
            with fs.open(f"{base}/{name}", "r") as file:
                return dict(json.load(file))
        except FileNotFoundError:
            return None

    def _download(self, location: str, folder: Path) -> None:
        fs, base = self._filesystem(location)
        if not fs.exists(f"{base}/{MANIFEST}"):
            raise FileNotFoundError(f"no version at {location} (no {MANIFEST})")
        for remote in fs.find(base):
            relative = remote[len(base) + 1 :]
            if relative.startswith(f"{CHECKPOINTS}/"):
                continue
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(path))

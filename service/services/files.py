"""Files: training files, validated on upload and stored whole or not at all, and the results
of succeeded jobs (their metrics CSV)."""

import hashlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from eval.data_screen import junk_ratio
from service.errors import ApiError, not_found
from service.models import File, Job, Tenant
from service.services import quotas
from service.services.paging import page
from service.services.paths import folder_under
from service.services.training_data import read_lines, validate_lines
from service.settings import Settings
from trainers.contracts.statuses import JobStatus

TRAINING_PURPOSE = "fine-tune"
RESULTS_PURPOSE = "fine-tune-results"  # OpenAI's purpose of a job's result files


def upload_file(
    session: Session,
    settings: Settings,
    tenant: Tenant,
    upload: BinaryIO,
    filename: str,
    purpose: str,
) -> File:
    """Validate and store an uploaded JSONL file; raises ApiError naming every bad line."""
    if purpose != TRAINING_PURPOSE:
        raise ApiError(400, f"Unsupported purpose '{purpose}'; use '{TRAINING_PURPOSE}'.", param="purpose")
    if len(filename) > 255:
        raise ApiError(400, "The file name is longer than 255 characters.", param="file", code="invalid_file")
    quotas.check_quota(session, settings, tenant, "max_files")
    folder = folder_under(settings.files_dir, tenant.name)
    folder.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkstemp(dir=folder, suffix=".partial")[1])
    try:
        size, digest = _copy_limited(upload, temp, settings.max_upload_bytes)
        quotas.check_quota(session, settings, tenant, "max_file_bytes", adding=size)
        with temp.open("rb") as lines:
            report = validate_lines(
                read_lines(lines, settings.max_row_bytes), settings.max_row_bytes, settings.max_upload_rows
            )
        if report.problems:
            raise ApiError(
                400, f"Invalid training file: {report.summary()}", param="file", code="invalid_file"
            )
        if report.rows == 0:
            raise ApiError(400, "The training file has no rows.", param="file", code="empty_file")
        with temp.open(newline="\n") as lines:  # rows end at LF only, as validate_lines split them
            junk = junk_ratio(json.loads(line) for line in lines if line.strip())
        file_id = f"file-{secrets.token_hex(12)}"
        path = folder / f"{file_id}.jsonl"
        row = File(
            id=file_id,
            tenant_pk=tenant.pk,
            filename=filename,
            purpose=purpose,
            bytes=size,
            rows=report.rows,
            sha256=digest,
            path=str(path),
            junk_ratio=junk,
        )
        session.add(row)
        session.flush()
        os.replace(temp, path)
        return row
    finally:
        temp.unlink(missing_ok=True)


def store_results(session: Session, settings: Settings, tenant: Tenant, job_id: str, content: str) -> File:
    """Store a job's metrics CSV as one of the tenant's files (purpose `fine-tune-results`).

    No quota applies: a job that trained is not failed for the size of its results.
    """
    folder = folder_under(settings.files_dir, tenant.name)
    folder.mkdir(parents=True, exist_ok=True)
    file_id = f"file-{secrets.token_hex(12)}"
    path = folder / f"{file_id}.csv"
    data = content.encode()
    row = File(
        id=file_id,
        tenant_pk=tenant.pk,
        filename=f"{job_id}-results.csv",
        purpose=RESULTS_PURPOSE,
        bytes=len(data),
        rows=max(content.count("\n") - 1, 0),  # less the header
        sha256=hashlib.sha256(data).hexdigest(),
        path=str(path),
    )
    session.add(row)
    session.flush()
    temp = path.with_name(f".{path.name}.partial")
    temp.write_bytes(data)
    os.replace(temp, path)
    return row


def file_content(session: Session, tenant: Tenant, file_id: str) -> Path:
    """Where the tenant's file with this id is stored; a 404 if there is no such file."""
    return Path(get_file(session, tenant, file_id).path)


def get_file(session: Session, tenant: Tenant, file_id: str, param: str | None = None) -> File:
    """The tenant's file with this id, or a 404."""
    row = session.scalar(select(File).where(File.id == file_id, File.tenant_pk == tenant.pk))
    if row is None:
        raise not_found("file", file_id, param)
    return row


def list_files(session: Session, tenant: Tenant, after: str | None, limit: int) -> tuple[list[File], bool]:
    """The tenant's files, newest first."""
    return page(session, File, File.tenant_pk == tenant.pk, after, limit)


def delete_file(session: Session, tenant: Tenant, file_id: str) -> None:
    """Delete a file no unfinished job still needs."""
    row = get_file(session, tenant, file_id)
    in_use = select(Job.id).where(
        (Job.training_file == row.id) | (Job.validation_file == row.id), Job.status.in_(JobStatus.active())
    )
    if session.scalar(in_use.limit(1)):
        raise ApiError(409, f"File '{file_id}' is used by an unfinished job.", code="file_in_use")
    session.delete(row)
    Path(row.path).unlink(missing_ok=True)


def _copy_limited(upload: BinaryIO, target: Path, limit: int) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := upload.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise ApiError(
                    413,
                    f"The file is over the limit of {limit} bytes.",
                    param="file",
                    code="file_too_large",
                )
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()

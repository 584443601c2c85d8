"""`/v1/files`: upload, list, get, read and delete files (training files, jobs' results)."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import FileResponse

from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import File
from service.schemas.common import ListPage
from service.schemas.files import FileDeleted, FilePublic
from service.services import files

router = APIRouter(prefix="/files", tags=["files"])


@router.post("", response_model=FilePublic)
def upload_file(
    file: UploadFile,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    purpose: Annotated[str, Form()] = "fine-tune",
) -> FilePublic:
    row = files.upload_file(session, settings, tenant, file.file, file.filename or "upload.jsonl", purpose)
    return file_public(row)


@router.get("", response_model=ListPage[FilePublic])
def list_files(
    session: SessionDep,
    tenant: TenantDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ListPage[FilePublic]:
    rows, has_more = files.list_files(session, tenant, after, limit)
    return ListPage(data=[file_public(row) for row in rows], has_more=has_more)


@router.get("/{file_id}", response_model=FilePublic)
def get_file(file_id: str, session: SessionDep, tenant: TenantDep) -> FilePublic:
    return file_public(files.get_file(session, tenant, file_id))


@router.get("/{file_id}/content", response_class=FileResponse)
def file_content(file_id: str, session: SessionDep, tenant: TenantDep) -> FileResponse:
    path = files.file_content(session, tenant, file_id)
    media_type = "text/csv" if path.suffix == ".csv" else "application/jsonl"
    return FileResponse(path, media_type=media_type)


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, session: SessionDep, tenant: TenantDep) -> FileDeleted:
    files.delete_file(session, tenant, file_id)
    return FileDeleted(id=file_id)


def file_public(row: File) -> FilePublic:
    return FilePublic(
        id=row.id,
        bytes=row.bytes,
        filename=row.filename,
        purpose=row.purpose,
        created_at=row.created_at,
        rows=row.rows,
        junk_ratio=row.junk_ratio,
    )

"""FastAPI dependencies: the settings, a database session and the calling tenant."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.db import Database
from service.errors import ApiError
from service.models import Tenant
from service.services.keys import tenant_for_key
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    with database.session() as session:
        yield session


def get_tenant(
    request: Request, session: Annotated[Session, Depends(get_session, scope="function")]
) -> Tenant:
    tenant = tenant_for_key(session, bearer_key(request))
    if tenant is None:
        raise invalid_key()
    return tenant


def bearer_key(request: Request) -> str:
    """The API key of `Authorization: Bearer <key>`, or a 401."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key")
    return key.strip()


def invalid_key() -> ApiError:
    return ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
TenantDep = Annotated[Tenant, Depends(get_tenant)]

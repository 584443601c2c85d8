"""FastAPI dependencies: the settings, a database session, the calling key and its tenant."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.db import Database
from service.errors import ApiError
from service.models import ApiKey, Tenant
from service.observability.logs import bind
from service.services.keys import KEY_MANAGERS, authenticate
from service.settings import Settings

# Declares the bearer key in the OpenAPI document, so /docs has an "Authorize" button and "Try it
# out" sends the key; `bearer_key` reads it, with this service's own error for a missing one.
BEARER = HTTPBearer(auto_error=False, description="An API key (`neuroplast keys create`).")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    with database.session() as session:
        yield session


def get_caller(
    request: Request,
    session: Annotated[Session, Depends(get_session, scope="function")],
    _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> ApiKey:
    key = authenticate(session, bearer_key(request))
    if key is None:
        raise invalid_key()
    return key


def get_tenant(
    session: Annotated[Session, Depends(get_session, scope="function")],
    caller: Annotated[ApiKey, Depends(get_caller)],
) -> Tenant:
    tenant = session.get_one(Tenant, caller.tenant_pk)
    bind(tenant=tenant.name)
    return tenant


def get_key_manager(caller: Annotated[ApiKey, Depends(get_caller)]) -> ApiKey:
    """The calling key when it may manage keys (scope `admin` or `platform`), else a 403."""
    if caller.scope not in KEY_MANAGERS:
        raise ApiError(403, "This needs a key with the 'admin' scope.", code="insufficient_scope")
    return caller


def get_platform(caller: Annotated[ApiKey, Depends(get_caller)]) -> ApiKey:
    """The calling key when its scope is `platform` (the operator's), else a 403."""
    if caller.scope != "platform":
        raise ApiError(403, "This needs a key with the 'platform' scope.", code="insufficient_scope")
    return caller


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
KeyManagerDep = Annotated[ApiKey, Depends(get_key_manager)]
PlatformDep = Annotated[ApiKey, Depends(get_platform)]

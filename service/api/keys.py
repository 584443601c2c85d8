"""`/v1/tenants` and `/v1/keys`: tenants (platform keys) and API keys (tenant admins: their own
tenant's; platform keys: every tenant's). Scopes: service/services/keys.py."""

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from service.deps import KeyManagerDep, PlatformDep, SessionDep
from service.models import ApiKey, Tenant
from service.schemas.common import ListPage
from service.schemas.keys import KeyCreate, KeyCreated, KeyPublic, TenantCreate, TenantPublic
from service.services import keys

router = APIRouter(tags=["keys"])


@router.post("/tenants", response_model=TenantPublic)
def create_tenant(body: TenantCreate, session: SessionDep, _: PlatformDep) -> TenantPublic:
    return tenant_public(keys.create_tenant(session, body.name))


@router.get("/tenants", response_model=ListPage[TenantPublic])
def list_tenants(session: SessionDep, _: PlatformDep) -> ListPage[TenantPublic]:
    return ListPage(data=[tenant_public(row) for row in keys.list_tenants(session)])


@router.post("/keys", response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep, caller: KeyManagerDep) -> KeyCreated:
    tenant = keys.managed_tenant(session, caller, body.tenant, "tenant")
    keys.check_manages(caller, body.scope)
    row, key = keys.issue_key(session, tenant, body.scope, body.name)
    return KeyCreated(**key_public(session, row).model_dump(), key=key)


@router.get("/keys", response_model=ListPage[KeyPublic])
def list_keys(session: SessionDep, caller: KeyManagerDep, tenant: str | None = None) -> ListPage[KeyPublic]:
    if caller.scope == "platform" and tenant is None:
        owner = None  # every tenant's
    else:
        owner = keys.managed_tenant(session, caller, tenant, "tenant")
    return ListPage(data=[key_public(session, row) for row in keys.list_keys(session, owner)])


@router.delete("/keys/{key_id}", response_model=KeyPublic)
def revoke_key(key_id: str, request: Request, session: SessionDep, caller: KeyManagerDep) -> KeyPublic:
    row = keys.revoke_key(session, key_id, caller)
    request.app.state.tenant_cache.clear()
    return key_public(session, row)


@router.post("/keys/{key_id}/rotate", response_model=KeyCreated)
def rotate_key(key_id: str, request: Request, session: SessionDep, caller: KeyManagerDep) -> KeyCreated:
    row, key = keys.rotate_key(session, key_id, caller)
    request.app.state.tenant_cache.clear()
    return KeyCreated(**key_public(session, row).model_dump(), key=key)


def tenant_public(row: Tenant) -> TenantPublic:
    return TenantPublic(id=row.name, name=row.name, created_at=row.created_at)


def key_public(session: Session, row: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=row.key_id,
        tenant=session.get_one(Tenant, row.tenant_pk).name,
        scope=row.scope,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )

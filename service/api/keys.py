"""`/v1/tenants` and `/v1/keys`: tenants and their API keys, managed with an `admin` key."""

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from service.deps import AdminDep, SessionDep
from service.models import ApiKey, Tenant
from service.schemas.common import ListPage
from service.schemas.keys import KeyCreate, KeyCreated, KeyPublic, TenantCreate, TenantPublic
from service.services import keys

router = APIRouter(tags=["keys"])


@router.post("/tenants", response_model=TenantPublic)
def create_tenant(body: TenantCreate, session: SessionDep, _: AdminDep) -> TenantPublic:
    return tenant_public(keys.create_tenant(session, body.name))


@router.get("/tenants", response_model=ListPage[TenantPublic])
def list_tenants(session: SessionDep, _: AdminDep) -> ListPage[TenantPublic]:
    return ListPage(data=[tenant_public(row) for row in keys.list_tenants(session)])


@router.post("/keys", response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep, _: AdminDep) -> KeyCreated:
    row, key = keys.issue_key(session, keys.get_tenant(session, body.tenant, "tenant"), body.scope, body.name)
    return KeyCreated(**key_public(session, row).model_dump(), key=key)


@router.get("/keys", response_model=ListPage[KeyPublic])
def list_keys(session: SessionDep, _: AdminDep, tenant: str | None = None) -> ListPage[KeyPublic]:
    owner = None if tenant is None else keys.get_tenant(session, tenant, "tenant")
    return ListPage(data=[key_public(session, row) for row in keys.list_keys(session, owner)])


@router.delete("/keys/{key_id}", response_model=KeyPublic)
def revoke_key(key_id: str, request: Request, session: SessionDep, _: AdminDep) -> KeyPublic:
    row = keys.revoke_key(session, key_id)
    request.app.state.tenant_cache.clear()
    return key_public(session, row)


@router.post("/keys/{key_id}/rotate", response_model=KeyCreated)
def rotate_key(key_id: str, request: Request, session: SessionDep, _: AdminDep) -> KeyCreated:
    row, key = keys.rotate_key(session, key_id)
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

"""API keys: `np_<key id>_<secret>`, stored as a salted hash, each belonging to one tenant.

A key is shown once, when it is made; afterwards only its id, tenant, scope and name are known.
Scopes, each allowing what the one before allows:

- `member` works inside its tenant: files, lineages, jobs, health checks, the gateway;
- `admin` (a tenant admin) also manages its own tenant's keys, never another tenant's;
- `platform` (the operator) also creates tenants, manages every tenant's keys and reads
  `/metrics` and why `/readyz` is not ready, which name every tenant's lineages.
"""

import asyncio
import hashlib
import hmac
import re
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Database
from service.errors import ApiError, not_found
from service.models import ApiKey, Tenant, now

KEY_PREFIX = "np_"
SCOPES = ("member", "admin", "platform")
KEY_MANAGERS = ("admin", "platform")
# A path segment of the artifact store and of served names: no dots, slashes or upper case.
TENANT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def create_key(session: Session, tenant_name: str, scope: str = "member", name: str | None = None) -> str:
    """Create a key for `tenant_name` (creating the tenant if new) and return it; shown only once."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = create_tenant(session, tenant_name)
    return issue_key(session, tenant, scope, name)[1]


def create_tenant(session: Session, name: str) -> Tenant:
    """A new tenant; 400 for a name outside TENANT_NAME, 409 when it exists."""
    if not re.fullmatch(TENANT_NAME, name):
        raise ApiError(
            400,
            f"Invalid tenant name '{name}': use 1-63 lowercase letters, digits, '_' or '-'.",
            param="name",
            code="invalid_name",
        )
    if session.scalar(select(Tenant.pk).where(Tenant.name == name)) is not None:
        raise ApiError(409, f"A tenant named '{name}' already exists.", param="name", code="tenant_exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, name: str, param: str | None = None) -> Tenant:
    """The tenant with this name, or a 404."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise not_found("tenant", name, param)
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    """Every tenant, newest first."""
    return list(session.scalars(select(Tenant).order_by(Tenant.pk.desc())))


def issue_key(session: Session, tenant: Tenant, scope: str, name: str | None) -> tuple[ApiKey, str]:
    """A new key of `tenant`: its row and the key itself, which is not stored anywhere."""
    if scope not in SCOPES:
        raise ApiError(400, f"scope: must be one of {list(SCOPES)}.", param="scope", code="invalid_value")
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(24), secrets.token_hex(16)
    row = ApiKey(
        key_id=key_id,
        tenant_pk=tenant.pk,
        salt=salt,
        secret_hash=_hash(salt, secret),
        scope=scope,
        name=name,
    )
    session.add(row)
    session.flush()
    return row, f"{KEY_PREFIX}{key_id}_{secret}"


def authenticate(session: Session, key: str) -> ApiKey | None:
    """The live key row matching `key`, or None when it is malformed, unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, _, secret = key.removeprefix(KEY_PREFIX).partition("_")
    row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(row.salt, secret)):
        return None
    return row


def tenant_for_key(session: Session, key: str) -> Tenant | None:
    """The tenant owning `key`, or None when the key is malformed, unknown or revoked."""
    row = authenticate(session, key)
    return None if row is None else session.get(Tenant, row.tenant_pk)


def any_key_exists(session: Session) -> bool:
    """Whether any usable key exists (`serve --dev-key` makes one when none does)."""
    return session.scalar(select(ApiKey.pk).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None


def list_keys(session: Session, tenant: Tenant | None) -> list[ApiKey]:
    """Every key, or one tenant's, newest first; revoked keys included (they say when)."""
    query = select(ApiKey).order_by(ApiKey.pk.desc())
    if tenant is not None:
        query = query.where(ApiKey.tenant_pk == tenant.pk)
    return list(session.scalars(query))


def managed_tenant(session: Session, caller: ApiKey, name: str | None, param: str) -> Tenant:
    """The tenant named `name` (the caller's own if None) whose keys `caller` may manage.

    A platform key manages every tenant's keys; a tenant admin only its own tenant's, and other
    tenants are not found for it (their names cannot be probed).
    """
    own = session.get_one(Tenant, caller.tenant_pk)
    if caller.scope == "platform":
        return own if name is None else get_tenant(session, name, param)
    if name not in (None, own.name):
        raise not_found("tenant", str(name), param)
    return own


def check_manages(caller: ApiKey, scope: str) -> None:
    """Raise a 403 unless `caller` may make or change keys of `scope`: only a platform key may
    touch a platform key."""
    if scope == "platform" and caller.scope != "platform":
        raise ApiError(
            403,
            "Only a key with the 'platform' scope makes or changes platform keys.",
            param="scope",
            code="insufficient_scope",
        )


def live_key(session: Session, caller: ApiKey, key_id: str) -> ApiKey:
    """A live key `caller` may manage, by its id; a 404 for any other, so ids of other tenants'
    keys cannot be probed."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
    if row is None or (caller.scope != "platform" and row.tenant_pk != caller.tenant_pk):
        raise not_found("live API key", key_id, "key_id")
    check_manages(caller, row.scope)
    return row


def revoke_key(session: Session, key_id: str, caller: ApiKey | None = None) -> ApiKey:
    """Revoke a live key by its id; it stops working at once (the gateway's cache: within its ttl).

    `caller`: the key asking, over REST; None on the service's own machine (the CLI).
    """
    if caller is None:
        row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
        if row is None:
            raise not_found("live API key", key_id, "key_id")
    else:
        row = live_key(session, caller, key_id)
    row.revoked_at = now()
    return row


def rotate_key(session: Session, key_id: str, caller: ApiKey | None = None) -> tuple[ApiKey, str]:
    """Replace a live key by a new one of the same tenant, scope and name; the old one is revoked."""
    old = revoke_key(session, key_id, caller)
    return issue_key(session, session.get_one(Tenant, old.tenant_pk), old.scope, old.name)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


class TenantCache:
    """Key -> tenant name for `ttl` seconds, so the gateway's hot path skips the database.

    A revoked key keeps working through the gateway for at most `ttl` seconds.
    """

    def __init__(self, database: Database, ttl: float = 10.0) -> None:
        self.database = database
        self.ttl = ttl
        self._entries: dict[str, tuple[str, float]] = {}

    async def tenant(self, key: str) -> str | None:
        """The tenant name owning `key`, or None when it is unknown or revoked."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        name, expires = self._entries.get(digest, ("", 0.0))
        if expires > time.monotonic():
            return name
        found = await asyncio.to_thread(self._lookup, key)
        if found is not None:
            self._entries[digest] = (found, time.monotonic() + self.ttl)
        return found

    def clear(self) -> None:
        """Forget every entry: a key revoked through this process stops working here at once."""
        self._entries.clear()

    def _lookup(self, key: str) -> str | None:
        with self.database.session() as session:
            tenant = tenant_for_key(session, key)
            return None if tenant is None else tenant.name

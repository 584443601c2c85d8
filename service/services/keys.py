"""API keys: `np_<key id>_<secret>`, stored as a salted hash, each belonging to one tenant."""

import asyncio
import hashlib
import hmac
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import Database
from service.models import ApiKey, Tenant, now

KEY_PREFIX = "np_"


def create_key(session: Session, tenant_name: str) -> str:
    """Create a key for `tenant_name` (creating the tenant if new) and return it; shown only once."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(24), secrets.token_hex(16)
    session.add(ApiKey(key_id=key_id, tenant_pk=tenant.pk, salt=salt, secret_hash=_hash(salt, secret)))
    return f"{KEY_PREFIX}{key_id}_{secret}"


def tenant_for_key(session: Session, key: str) -> Tenant | None:
    """The tenant owning `key`, or None when the key is malformed, unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, _, secret = key.removeprefix(KEY_PREFIX).partition("_")
    row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(row.salt, secret)):
        return None
    return session.get(Tenant, row.tenant_pk)


def any_key_exists(session: Session) -> bool:
    """Whether any usable key exists (the embedded default makes a dev key when none does)."""
    return session.scalar(select(ApiKey.pk).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None


def revoke_key(session: Session, key_id: str) -> bool:
    """Revoke a key by its id; False if there was no such live key."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)))
    if row is None:
        return False
    row.revoked_at = now()
    return True


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

    def _lookup(self, key: str) -> str | None:
        with self.database.session() as session:
            tenant = tenant_for_key(session, key)
            return None if tenant is None else tenant.name

"""Tenants and API keys: platform and tenant-admin scopes, keys shown once, revocation and rotation."""

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import Database
from service.models import Base
from service.services.keys import create_key


def _admin(database: Database, tenant: str = "ops", scope: str = "platform") -> dict[str, str]:
    with database.session() as session:
        return {"Authorization": f"Bearer {create_key(session, tenant, scope=scope)}"}


def test_member_keys_cannot_manage_tenants_or_keys(api: TestClient) -> None:
    for method, path, body in (
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"tenant": "acme"}),
        ("GET", "/v1/tenants", None),
        ("POST", "/v1/tenants", {"name": "initech"}),
        ("DELETE", "/v1/keys/abc", None),
        ("POST", "/v1/keys/abc/rotate", None),
    ):
        response = api.request(method, path, json=body)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "insufficient_scope"


def test_a_tenant_admin_manages_only_its_own_tenants_keys(api: TestClient, database: Database) -> None:
    acme_admin, globex_admin = _admin(database, "acme", "admin"), _admin(database, "globex", "admin")
    globex_key = api.post("/v1/keys", headers=globex_admin, json={"tenant": "globex"}).json()

    own = api.post("/v1/keys", headers=acme_admin, json={"tenant": "acme", "name": "ci"})
    assert own.status_code == 200 and own.json()["tenant"] == "acme"
    assert {key["tenant"] for key in api.get("/v1/keys", headers=acme_admin).json()["data"]} == {"acme"}
    # Another tenant is not found for it: not its keys, nor whether the tenant exists.
    for method, path, body in (
        ("POST", "/v1/keys", {"tenant": "globex"}),
        ("GET", "/v1/keys?tenant=globex", None),
        ("DELETE", f"/v1/keys/{globex_key['id']}", None),
        ("POST", f"/v1/keys/{globex_key['id']}/rotate", None),
    ):
        refused = api.request(method, path, headers=acme_admin, json=body)
        assert refused.status_code == 404, (path, refused.json())
    assert api.get("/v1/files", headers={"Authorization": f"Bearer {globex_key['key']}"}).status_code == 200
    # Nor may it make tenants or platform keys, or read what names every tenant.
    assert api.post("/v1/tenants", headers=acme_admin, json={"name": "initech"}).status_code == 403
    assert api.get("/v1/tenants", headers=acme_admin).status_code == 403
    platform = api.post("/v1/keys", headers=acme_admin, json={"tenant": "acme", "scope": "platform"})
    assert platform.status_code == 403 and platform.json()["error"]["param"] == "scope"
    assert api.get("/metrics", headers=acme_admin).status_code == 403


def test_a_platform_key_manages_every_tenant(api: TestClient, database: Database) -> None:
    platform = _admin(database)
    made = api.post("/v1/keys", headers=platform, json={"tenant": "acme", "scope": "platform"})
    assert made.status_code == 200 and made.json()["scope"] == "platform"
    tenant_admin = _admin(database, "acme", "admin")
    # A tenant admin cannot revoke the platform key that lives in its tenant.
    assert api.delete(f"/v1/keys/{made.json()['id']}", headers=tenant_admin).status_code == 403
    assert api.delete(f"/v1/keys/{made.json()['id']}", headers=platform).status_code == 200


def test_a_platform_key_creates_a_tenant_and_a_key_shown_once(api: TestClient, database: Database) -> None:
    admin = _admin(database)
    tenant = api.post("/v1/tenants", headers=admin, json={"name": "initech"})
    assert tenant.status_code == 200 and tenant.json()["name"] == "initech"
    created = api.post("/v1/keys", headers=admin, json={"tenant": "initech", "name": "ci"}).json()
    assert created["key"].startswith(f"np_{created['id']}_") and created["scope"] == "member"

    listed = api.get("/v1/keys", headers=admin, params={"tenant": "initech"}).json()["data"]
    assert [key["id"] for key in listed] == [created["id"]]
    assert "key" not in listed[0] and created["key"] not in str(listed)
    new_key = {"Authorization": f"Bearer {created['key']}"}
    assert api.get("/v1/files", headers=new_key).status_code == 200
    assert {row["name"] for row in api.get("/v1/tenants", headers=admin).json()["data"]} >= {
        "acme",
        "initech",
        "ops",
    }


def test_tenant_names_are_strict(api: TestClient, database: Database) -> None:
    admin = _admin(database)
    for name in ("Upper", "a/b", "../x", "a.b", "", "x" * 64, "-lead"):
        response = api.post("/v1/tenants", headers=admin, json={"name": name})
        assert response.status_code == 400, name
        assert response.json()["error"]["param"] == "name"
    assert api.post("/v1/tenants", headers=admin, json={"name": "acme"}).status_code == 409
    assert api.post("/v1/keys", headers=admin, json={"tenant": "nobody"}).status_code == 404


def test_a_revoked_key_stops_working_at_once_also_at_the_gateway(api: TestClient, database: Database) -> None:
    admin = _admin(database)
    created = api.post("/v1/keys", headers=admin, json={"tenant": "acme"}).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    assert api.get("/v1/models", headers=key).status_code == 200  # the gateway caches the key
    assert api.get("/v1/files", headers=key).status_code == 200

    revoked = api.delete(f"/v1/keys/{created['id']}", headers=admin)

    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.get("/v1/files", headers=key).json()["error"]["code"] == "invalid_api_key"
    assert api.get("/v1/models", headers=key).status_code == 401  # the gateway's cache was cleared
    assert api.delete(f"/v1/keys/{created['id']}", headers=admin).status_code == 404


def test_rotation_replaces_a_key_with_one_of_the_same_tenant_and_scope(
    api: TestClient, database: Database
) -> None:
    admin = _admin(database)
    old = api.post("/v1/keys", headers=admin, json={"tenant": "acme", "scope": "admin", "name": "ops"}).json()

    new = api.post(f"/v1/keys/{old['id']}/rotate", headers=admin).json()

    assert (new["tenant"], new["scope"], new["name"]) == ("acme", "admin", "ops") and new["id"] != old["id"]
    assert api.get("/v1/keys", headers={"Authorization": f"Bearer {new['key']}"}).status_code == 200
    assert api.get("/v1/keys", headers={"Authorization": f"Bearer {old['key']}"}).status_code == 401
    assert api.post(f"/v1/keys/{old['id']}/rotate", headers=admin).status_code == 404


def test_keys_are_stored_only_as_salted_hashes(api: TestClient, database: Database) -> None:
    created = api.post("/v1/keys", headers=_admin(database), json={"tenant": "acme"}).json()
    secret = created["key"].split("_", 2)[2]
    with database.session() as session:  # every row of every table, on SQLite and Postgres alike
        dump = "\n".join(
            str(row) for table in Base.metadata.sorted_tables for row in session.execute(select(table))
        )
    assert created["id"] in dump and secret not in dump

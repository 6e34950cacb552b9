"""Tenant authentication: modes, bearer parsing, keys, the admin key, revocation, the verified-key cache."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_engine.auth import KEY_PREFIX, Authenticator, bearer, hash_key
from mcp_engine.errors import InvalidInput, PermissionDenied, Unauthenticated
from mcp_engine.store.base import Tenant
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import engine_settings

ADMIN = "admin-secret-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "engine.db"))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(store: SQLiteStore, clock: Clock) -> Authenticator:
    return Authenticator(store, "on", ADMIN, cache_ttl_s=5.0, clock=clock)


async def tenant_with_key(auth: Authenticator, tenant_id: str = "acme") -> str:
    await auth.create_tenant(tenant_id)
    return (await auth.create_key(tenant_id))[1]


@pytest.mark.parametrize(
    ("header", "key"),
    [("Bearer k1", "k1"), ("bearer k1", "k1"), ("  BEARER   k1 ", "k1"), ("Bearer mcpk_a_b-c", "mcpk_a_b-c")],
)
def test_bearer_parses_the_key(header: str, key: str) -> None:
    assert bearer(header) == key


@pytest.mark.parametrize("header", [None, "", "k1", "Basic k1", "Bearer", "Bearer ", "Bearer k1 k2"])
def test_bearer_refuses_anything_else(header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        bearer(header)


async def test_a_key_decides_the_tenant(auth: Authenticator) -> None:
    key = await tenant_with_key(auth)
    assert await auth.tenant(f"Bearer {key}", None) == "acme"
    assert await auth.tenant(f"Bearer {key}", "acme") == "acme"


async def test_naming_another_tenant_is_refused(auth: Authenticator) -> None:
    key = await tenant_with_key(auth)
    await auth.create_tenant("other")
    with pytest.raises(PermissionDenied, match="another tenant"):
        await auth.tenant(f"Bearer {key}", "other")


@pytest.mark.parametrize("header", [None, "Bearer", "Token abc", "Bearer mcpk_000000000000_wrong"])
async def test_no_bad_or_unknown_key_is_unauthenticated(auth: Authenticator, header: str | None) -> None:
    await tenant_with_key(auth)
    with pytest.raises(Unauthenticated):
        await auth.tenant(header, "acme")


async def test_a_revoked_key_stops_at_once_here(auth: Authenticator) -> None:
    await auth.create_tenant("acme")
    key_id, key = await auth.create_key("acme")
    _, other = await auth.create_key("acme")
    assert await auth.tenant(f"Bearer {key}", None) == "acme"  # now cached
    assert await auth.revoke_key("acme", key_id)
    with pytest.raises(Unauthenticated):
        await auth.tenant(f"Bearer {key}", None)
    assert await auth.tenant(f"Bearer {other}", None) == "acme"


async def test_a_key_revoked_elsewhere_stops_within_the_ttl(
    auth: Authenticator, store: SQLiteStore, clock: Clock
) -> None:
    await auth.create_tenant("acme")
    key_id, key = await auth.create_key("acme")
    assert await auth.tenant(f"Bearer {key}", None) == "acme"
    assert await store.revoke_api_key("acme", key_id)  # as the CLI or another engine would
    clock.now += 4.9
    assert await auth.tenant(f"Bearer {key}", None) == "acme"  # the documented grace
    clock.now += 0.2
    with pytest.raises(Unauthenticated):
        await auth.tenant(f"Bearer {key}", None)


async def test_the_cache_is_bounded(store: SQLiteStore, clock: Clock) -> None:
    auth = Authenticator(store, "on", None, cache_size=2, clock=clock)
    await auth.create_tenant("acme")
    keys = [(await auth.create_key("acme"))[1] for _ in range(3)]
    for key in keys:
        await auth.tenant(f"Bearer {key}", None)
    assert len(auth._verified) == 2
    assert hash_key(keys[0]) not in auth._verified


async def test_revoking_with_another_tenants_id_does_nothing(auth: Authenticator) -> None:
    await auth.create_tenant("acme")
    key_id, key = await auth.create_key("acme")
    await auth.create_tenant("other")
    assert not await auth.revoke_key("other", key_id)
    assert await auth.tenant(f"Bearer {key}", None) == "acme"


async def test_the_key_is_shown_once_and_stored_hashed(auth: Authenticator, store: SQLiteStore) -> None:
    await auth.create_tenant("acme")
    key_id, key = await auth.create_key("acme")
    assert key.startswith(f"{KEY_PREFIX}{key_id}_")
    secret = key.removeprefix(f"{KEY_PREFIX}{key_id}_")
    assert len(secret) == 43  # token_urlsafe(32): 256 random bits
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
        dump = "\n".join(db.iterdump())
    assert len(rows) == 1
    assert hash_key(key) in rows[0]
    assert key not in dump
    assert secret not in dump
    listed = await auth.list_keys("acme")
    assert [(k.key_id, k.revoked_at) for k in listed] == [(key_id, None)]
    assert key not in repr(listed)


async def test_the_admin_key_acts_for_the_named_tenant(auth: Authenticator) -> None:
    await auth.create_tenant("acme")
    assert await auth.tenant(f"Bearer {ADMIN}", "acme") == "acme"
    with pytest.raises(InvalidInput, match="name it"):
        await auth.tenant(f"Bearer {ADMIN}", None)
    await auth.admin(f"Bearer {ADMIN}")


async def test_admin_refuses_anything_but_the_admin_key(auth: Authenticator) -> None:
    key = await tenant_with_key(auth)
    for header in (None, f"Bearer {key}", f"Bearer {ADMIN}x", ADMIN):
        with pytest.raises(Unauthenticated):
            await auth.admin(header)


async def test_admin_without_a_configured_admin_key(store: SQLiteStore) -> None:
    auth = Authenticator(store, "on", None)
    with pytest.raises(Unauthenticated, match="MCP_ADMIN_KEY"):
        await auth.admin("Bearer anything")
    with pytest.raises(Unauthenticated):
        await auth.tenant("Bearer ", "acme")


async def test_off_mode_trusts_the_named_tenant_and_ignores_the_header(store: SQLiteStore) -> None:
    auth = Authenticator(store, "off", None)
    assert await auth.tenant(None, "acme") == "acme"
    assert await auth.tenant("Bearer not-a-key", "acme") == "acme"
    with pytest.raises(InvalidInput, match="X-Tenant-ID or tenant_id, or turn auth on"):
        await auth.tenant(None, None)


@pytest.mark.parametrize("tenant_id", ["", "Acme", "-acme", "a b", "a" * 65, "acme!"])
async def test_create_tenant_validates_the_id(auth: Authenticator, tenant_id: str) -> None:
    with pytest.raises(InvalidInput, match="bad tenant id"):
        await auth.create_tenant(tenant_id)


async def test_create_tenant_refuses_an_existing_one(auth: Authenticator, store: SQLiteStore) -> None:
    await store.put_tenant(Tenant("acme", default_flow="pizza"))
    with pytest.raises(InvalidInput, match="already exists"):
        await auth.create_tenant("acme")
    assert await store.get_tenant("acme") == Tenant("acme", default_flow="pizza")


async def test_keys_need_an_existing_tenant(auth: Authenticator) -> None:
    with pytest.raises(InvalidInput, match="tenants create nope"):
        await auth.create_key("nope")
    with pytest.raises(InvalidInput, match="no tenant"):
        await auth.list_keys("nope")


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        ({}, "off"),
        ({"postgres_uri": "postgresql://db/mcp"}, "on"),
        ({"postgres_uri": "postgresql://db/mcp", "auth": "off"}, "off"),
        ({"auth": "on"}, "on"),
    ],
)
def test_auth_mode_defaults_by_deployment(values: dict[str, str], mode: str) -> None:
    assert engine_settings(**values).auth_mode == mode


async def test_from_settings(store: SQLiteStore) -> None:
    settings = engine_settings(auth="on", admin_key=ADMIN)
    assert ADMIN not in repr(settings)
    auth = Authenticator.from_settings(store, settings)
    assert auth.mode == "on"
    await auth.admin(f"Bearer {ADMIN}")

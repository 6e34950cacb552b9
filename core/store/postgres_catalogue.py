"""The production store's catalogue in PostgreSQL: tenants, their API keys, and flow versions.

PostgreSQL alone holds them (Redis caches none): none is on a turn's hot path, where a new run reads only
the name of its flow's published version.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from mcp_engine.errors import FlowNotFound, InvalidInput, VersionExists
from mcp_engine.security.grants import Grants
from mcp_engine.store.base import ApiKey, FlowVersion, Tenant, encode_json
from mcp_engine.store.postgres_pool import PoolUser, changes_catalogue, count, outage_is_unavailable

_FLOW = "tenant_id, flow_id, version, document, status, created_at, published_at"
_KEY = "key_id, tenant_id, created_at, revoked_at"
_VERSION = "tenant_id = $1 AND flow_id = $2 AND version = $3"


class CatalogueTables(PoolUser):
    """Tenants, API keys and flow versions: the ``Store`` methods of the same names."""

    # tenants
    @outage_is_unavailable
    @changes_catalogue
    async def put_tenant(self, tenant: Tenant) -> None:
        plugins = tenant.enabled_plugins
        await self._db().execute(
            "INSERT INTO tenants (tenant_id, default_flow, enabled_plugins, outbound_webhook, grants,"
            " webhook_secret) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET"
            " default_flow = EXCLUDED.default_flow, enabled_plugins = EXCLUDED.enabled_plugins,"
            " outbound_webhook = EXCLUDED.outbound_webhook, grants = EXCLUDED.grants,"
            " webhook_secret = EXCLUDED.webhook_secret",
            tenant.tenant_id,
            tenant.default_flow,
            None if plugins is None else encode_json(list(plugins), "enabled_plugins"),
            tenant.outbound_webhook,
            None if (grants := tenant.grants.to_json()) is None else encode_json(grants, "grants"),
            tenant.webhook_secret,
        )

    @outage_is_unavailable
    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._db().fetchrow(
            "SELECT tenant_id, default_flow, enabled_plugins, outbound_webhook, grants, webhook_secret"
            " FROM tenants WHERE tenant_id = $1",
            tenant_id,
        )
        return None if row is None else _tenant(row)

    @outage_is_unavailable
    async def list_tenants(self) -> list[Tenant]:
        rows = await self._db().fetch(
            "SELECT tenant_id, default_flow, enabled_plugins, outbound_webhook, grants, webhook_secret"
            " FROM tenants ORDER BY tenant_id"
        )
        return [_tenant(row) for row in rows]

    # API keys
    @outage_is_unavailable
    async def put_api_key(self, tenant_id: str, key_id: str, key_hash: str) -> ApiKey:
        key = ApiKey(key_id, tenant_id, time.time())
        try:
            await self._db().execute(
                "INSERT INTO api_keys (tenant_id, key_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
                tenant_id,
                key_id,
                key_hash,
                key.created_at,
            )
        except asyncpg.UniqueViolationError as exc:
            raise InvalidInput(f"tenant '{tenant_id}' already has a key '{key_id}' (or that key)") from exc
        return key

    @outage_is_unavailable
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._db().fetchrow(
            f"SELECT {_KEY} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )
        return None if row is None else ApiKey(*row)

    @outage_is_unavailable
    async def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        status = await self._db().execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND key_id = $3 AND revoked_at IS NULL",
            time.time(),
            tenant_id,
            key_id,
        )
        return count(status) == 1

    @outage_is_unavailable
    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._db().fetch(
            f"SELECT {_KEY} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id", tenant_id
        )
        return [ApiKey(*row) for row in rows]

    # flows
    @outage_is_unavailable
    async def save_flow_version(self, tenant_id: str, document: dict[str, Any]) -> FlowVersion:
        flow_id, version = document.get("flow_id"), document.get("version")
        if not isinstance(flow_id, str) or not isinstance(version, str):
            raise InvalidInput("a flow document needs a string flow_id and version")
        body = encode_json(document, "flow document", canonical=True)
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO flow_versions ({_FLOW}) VALUES ($1, $2, $3, $4, 'draft', $5, NULL)"
                f" ON CONFLICT (tenant_id, flow_id, version) DO NOTHING RETURNING {_FLOW}",
                tenant_id,
                flow_id,
                version,
                body,
                time.time(),
            )
            if row is not None:
                return _flow(row)
            # jsonb equality ignores key order, so the same document re-saved compares equal
            row = await conn.fetchrow(
                f"SELECT {_FLOW}, document = $4 AS same FROM flow_versions WHERE {_VERSION}",
                tenant_id,
                flow_id,
                version,
                body,
            )
        if not row["same"]:
            raise VersionExists(
                f"flow '{flow_id}' version {version} is already stored with other content",
                {"flow_id": flow_id, "version": version},
            )
        return _flow(row)

    @outage_is_unavailable
    async def get_flow_version(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion | None:
        row = await self._db().fetchrow(
            f"SELECT {_FLOW} FROM flow_versions WHERE {_VERSION}", tenant_id, flow_id, version
        )
        return None if row is None else _flow(row)

    @outage_is_unavailable
    @changes_catalogue
    async def publish(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion:
        async with self._transaction() as conn:
            # Lock the flow's versions first: two concurrent publishes then run one after the other
            # instead of both demoting nothing and clashing on the one-published index.
            await conn.execute(
                "SELECT 1 FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2 FOR UPDATE",
                tenant_id,
                flow_id,
            )
            await conn.execute(
                "UPDATE flow_versions SET status = 'draft'"
                " WHERE tenant_id = $1 AND flow_id = $2 AND status = 'published' AND version != $3",
                tenant_id,
                flow_id,
                version,
            )
            row = await conn.fetchrow(
                f"UPDATE flow_versions SET status = 'published', published_at = $4 WHERE {_VERSION}"
                f" RETURNING {_FLOW}",
                tenant_id,
                flow_id,
                version,
                time.time(),
            )
            if row is None:
                raise FlowNotFound(
                    f"flow '{flow_id}' has no version {version}", {"flow_id": flow_id, "version": version}
                )
        return _flow(row)

    @outage_is_unavailable
    async def published(self, tenant_id: str, flow_id: str) -> FlowVersion | None:
        row = await self._db().fetchrow(
            f"SELECT {_FLOW} FROM flow_versions"
            " WHERE tenant_id = $1 AND flow_id = $2 AND status = 'published'",
            tenant_id,
            flow_id,
        )
        return None if row is None else _flow(row)

    @outage_is_unavailable
    async def published_version(self, tenant_id: str, flow_id: str) -> str | None:
        version: str | None = await self._db().fetchval(
            "SELECT version FROM flow_versions"
            " WHERE tenant_id = $1 AND flow_id = $2 AND status = 'published'",
            tenant_id,
            flow_id,
        )
        return version

    @outage_is_unavailable
    async def list_flows(self, tenant_id: str) -> list[FlowVersion]:
        rows = await self._db().fetch(
            f"SELECT DISTINCT ON (flow_id) {_FLOW} FROM flow_versions WHERE tenant_id = $1"
            " ORDER BY flow_id, created_at DESC, id DESC",
            tenant_id,
        )
        return [_flow(row) for row in rows]

    @outage_is_unavailable
    async def list_versions(self, tenant_id: str, flow_id: str) -> list[FlowVersion]:
        rows = await self._db().fetch(
            f"SELECT {_FLOW} FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2"
            " ORDER BY created_at, id",
            tenant_id,
            flow_id,
        )
        return [_flow(row) for row in rows]

    @outage_is_unavailable
    @changes_catalogue
    async def delete_flow(self, tenant_id: str, flow_id: str) -> bool:
        status = await self._db().execute(
            "DELETE FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2", tenant_id, flow_id
        )
        return count(status) > 0


def _tenant(row: asyncpg.Record) -> Tenant:
    tenant_id, default_flow, plugins, webhook, grants, secret = row
    enabled = None if plugins is None else tuple(plugins)
    return Tenant(tenant_id, default_flow, enabled, webhook, Grants.from_json(grants), secret)


def _flow(row: asyncpg.Record) -> FlowVersion:
    return FlowVersion(*(row[i] for i in range(7)))

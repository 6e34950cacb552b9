"""Tenants, their keys, the plugin list, health and the OpenAPI document.

A tenant's settings may be changed with its own key or the admin key; only the admin key creates a
tenant or issues and revokes keys. Health endpoints are public: load balancers probe them without keys.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from mcp_engine.api.rest import models
from mcp_engine.api.rest.edge import OPENAPI, Call, model_response
from mcp_engine.api.rest.middleware import ResourceNotFound, Unavailable
from mcp_engine.api.rest.routing import Route
from mcp_engine.errors import InvalidInput, PermissionDenied, Unauthenticated
from mcp_engine.plugin_manager import Provider
from mcp_engine.registry import enables
from mcp_engine.store.base import Tenant


async def _is_admin(call: Call) -> bool:
    """The admin key, or auth off: with nothing checked, anyone may create and configure tenants."""
    if call.auth.mode == "off":
        return True
    try:
        await call.auth.admin(call.authorization)
    except Unauthenticated:
        return False
    return True


def _tenant_out(tenant: Tenant) -> models.TenantOut:
    plugins = list(tenant.enabled_plugins) if tenant.enabled_plugins is not None else None
    return models.TenantOut(
        tenant_id=tenant.tenant_id,
        default_flow=tenant.default_flow,
        enabled_plugins=plugins,
        outbound_webhook=tenant.outbound_webhook,
        webhook_secret_set=bool(tenant.webhook_secret),
    )


async def put_tenant(call: Call) -> web.StreamResponse:
    """Set the tenant's default flow, enabled plugins, outbound webhook and its signing secret. Fields left
    out keep their value. With the admin key an unknown tenant is created (201); its own key may change
    it (200)."""
    tenant_id = call.path["tenant_id"]
    admin = await _is_admin(call)
    if not admin and await call.tenant(tenant_id) != tenant_id:
        raise PermissionDenied("a tenant may only change its own settings", {"tenant_id": tenant_id})
    store, catalogue = call.engine.store, call.engine.catalogue
    current = await store.get_tenant(tenant_id)
    if current is None and not admin:
        raise ResourceNotFound(f"tenant '{tenant_id}' not found (the admin key creates tenants)")
    body = call.body_as(models.TenantIn)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if changes.get("default_flow") and await store.published(tenant_id, changes["default_flow"]) is None:
        raise InvalidInput(
            f"default_flow: flow '{changes['default_flow']}' has no published version",
            {"errors": [{"loc": ["body", "default_flow"], "msg": "no published version", "type": "flow"}]},
        )
    if changes.get("outbound_webhook"):
        await catalogue.check_webhook(tenant_id, changes["outbound_webhook"])
    if "enabled_plugins" in changes and changes["enabled_plugins"] is not None:
        catalogue.check_plugin_names(changes["enabled_plugins"])
        changes["enabled_plugins"] = tuple(changes["enabled_plugins"])
    created = current is None
    if current is None:
        await call.auth.create_tenant(tenant_id)
        current = await store.get_tenant(tenant_id) or Tenant(tenant_id)
    tenant = replace(current, **changes)  # grants are the operator's: a tenant's PUT never touches them
    await catalogue.put_tenant(tenant)
    return model_response(_tenant_out(tenant), 201 if created else 200)


async def create_key(call: Call) -> web.StreamResponse:
    """Issue a key for the tenant (admin only). The key is in this response and nowhere else."""
    await call.auth.admin(call.authorization)
    tenant_id = call.path["tenant_id"]
    if await call.engine.store.get_tenant(tenant_id) is None:
        raise ResourceNotFound(f"tenant '{tenant_id}' not found", {"tenant_id": tenant_id})
    key_id, key = await call.auth.create_key(tenant_id)
    return model_response(models.KeyCreated(tenant_id=tenant_id, key_id=key_id, key=key), 201)


async def revoke_key(call: Call) -> web.StreamResponse:
    """Revoke one of the tenant's keys (admin only); it stops working at once."""
    await call.auth.admin(call.authorization)
    tenant_id, key_id = call.path["tenant_id"], call.path["key_id"]
    if not await call.auth.revoke_key(tenant_id, key_id):
        raise ResourceNotFound(f"key '{key_id}' of tenant '{tenant_id}' not found", {"key_id": key_id})
    return web.Response(status=204)


async def list_plugins(call: Call) -> web.StreamResponse:
    """Every installed plugin class with its provider; when a tenant is named, whether it has enabled
    each (built-ins always are) and its ``enabled_plugins``; and the installed plugins that were skipped."""
    registry = call.engine.registry
    tenant_id = enabled = None
    if call.names_tenant():
        tenant_id = await call.tenant()
        tenant = await call.engine.store.get_tenant(tenant_id)
        enabled = tenant.enabled_plugins if tenant is not None else None
    plugins = [
        models.PluginOut(
            **record,
            enabled=None
            if tenant_id is None
            else enables(enabled, Provider(record["provider"], record["version"], record["plugin"])),
        )
        for record in registry.describe()
    ]
    return model_response(
        models.PluginList(
            plugins=plugins,
            skipped=[models.SkippedPlugin(**entry.to_dict()) for entry in registry.skipped],
            tenant_id=tenant_id,
            enabled_plugins=None if enabled is None else list(enabled),
        )
    )


async def health(call: Call) -> web.StreamResponse:
    """Liveness: the process answers."""
    return model_response(models.Health(status="ok"))


async def ready(call: Call) -> web.StreamResponse:
    """Readiness: the store answers (503 otherwise, so a load balancer routes around this process)."""
    if not await call.engine.store.ready():
        raise Unavailable("the store is not reachable", {"store": call.engine.store.name})
    return model_response(models.Health(status="ready"))


async def openapi(call: Call) -> web.StreamResponse:
    """This document (OpenAPI 3.1), generated from the route table and its models."""
    return web.Response(body=call.request.app[OPENAPI], content_type="application/json")


TENANT = "/v2/tenants/{tenant_id}"
ROUTES = (
    Route(
        "PUT",
        TENANT,
        put_tenant,
        "Create or change a tenant",
        "tenants",
        {200: models.TenantOut, 201: models.TenantOut},
        body=models.TenantIn,
        errors=(422,),
    ),
    Route(
        "POST",
        TENANT + "/keys",
        create_key,
        "Issue a key",
        "tenants",
        {201: models.KeyCreated},
        access="admin",
    ),
    Route(
        "DELETE",
        TENANT + "/keys/{key_id}",
        revoke_key,
        "Revoke a key",
        "tenants",
        {204: None},
        access="admin",
    ),
    Route("GET", "/v2/plugins", list_plugins, "List plugins", "plugins", {200: models.PluginList}),
    Route("GET", "/v2/health", health, "Liveness", "health", {200: models.Health}, access="public"),
    Route(
        "GET",
        "/v2/health/ready",
        ready,
        "Readiness",
        "health",
        {200: models.Health},
        errors=(503,),
        access="public",
    ),
)
OPENAPI_ROUTE = Route(
    "GET",
    "/v2/openapi.json",
    openapi,
    "The OpenAPI document",
    "meta",
    {200: ("application/json",)},
    access="public",
)

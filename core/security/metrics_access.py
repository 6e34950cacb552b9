"""Who may read ``/metrics`` (``MCP_METRICS``): its labels name every tenant's flows and integrations.

``public``: anyone; ``protected``: a bearer ``MCP_METRICS_TOKEN`` or the admin key (Prometheus sends it
with ``authorization: {credentials: ...}``); ``off``: no route at all (404). Unset: protected when auth is
on, public when it is off (where nothing else is checked either).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from mcp_engine.auth import bearer
from mcp_engine.config import EngineSettings
from mcp_engine.errors import Unauthenticated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_routes(handle: Handler, settings: EngineSettings) -> list[web.RouteDef]:
    """The ``/metrics`` route as ``settings`` expose it (none when off)."""
    mode = settings.metrics_mode
    if mode == "off":
        return []
    if mode == "public":
        return [web.get("/metrics", handle)]
    tokens = [s.get_secret_value().encode() for s in (settings.metrics_token, settings.admin_key) if s]

    async def protected(request: web.Request) -> web.StreamResponse:
        key = bearer(request.headers.get("Authorization")).encode()
        if not any(hmac.compare_digest(key, token) for token in tokens):
            raise Unauthenticated("/metrics needs MCP_METRICS_TOKEN or the admin key (MCP_METRICS=protected)")
        return await handle(request)

    return [web.get("/metrics", protected)]

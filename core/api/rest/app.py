"""``create_app``: the REST v2 application over an ``ExecutionService``, an authenticator and a limiter.

The route table (``ROUTES``) is the single description of the API: aiohttp's routes and the OpenAPI
document at ``/v2/openapi.json`` are both built from it when the app is created.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from mcp_engine.api.rest import admin, conversations, experiments, flows, flowtests
from mcp_engine.api.rest.bodies import DEFAULT_LIMIT
from mcp_engine.api.rest.edge import AUTH, ENGINE, LIMITER, OPENAPI, Auth
from mcp_engine.api.rest.middleware import error_middleware
from mcp_engine.api.rest.routing import Route, add_routes, openapi_bytes
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter

ROUTES: tuple[Route, ...] = (
    *flows.ROUTES,
    *flowtests.ROUTES,
    *conversations.ROUTES,
    *experiments.ROUTES,
    *admin.ROUTES,
    admin.OPENAPI_ROUTE,
)
TITLE = "MCP Engine"
API_VERSION = "2.0.0"


def create_app(
    engine: ExecutionService,
    auth: Auth,
    limiter: Limiter,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] | None = None,
    max_body_bytes: int | None = None,
) -> web.Application:
    """The application; the caller owns the engine's lifecycle (``serve`` starts and closes it).

    ``extra_routes`` mounts routes outside the API (``/metrics``): they get the JSON error handling but
    are not part of the OpenAPI document. A body over its tenant's limit is refused with 413: a tenant's
    own (``mcp-engine tenants grant --max-body-bytes``), else ``max_body_bytes`` (None: the engine's
    ``MCP_MAX_BODY_BYTES``).
    """
    default_limit = max_body_bytes or engine.settings.max_body_bytes
    app = web.Application(middlewares=[error_middleware], client_max_size=default_limit)
    app[DEFAULT_LIMIT] = default_limit
    app[ENGINE] = engine
    app[AUTH] = auth
    app[LIMITER] = limiter
    app[OPENAPI] = openapi_bytes(ROUTES, TITLE, API_VERSION)
    add_routes(app, ROUTES)
    if extra_routes is not None:
        app.router.add_routes(extra_routes)
    return app

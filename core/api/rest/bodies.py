"""Reading a request body within its tenant's limit (``MCP_MAX_BODY_BYTES``, a tenant's override).

The tenant is found before the body is read, from what the request says before its body: the key
(auth on) or the ``X-Tenant-ID`` header / ``tenant_id`` query parameter (auth off). A request whose
tenant is not known yet (no key, a tenant named only in its body) gets the operator's default. Too large
is a 413 naming the limit, before the body is read when ``Content-Length`` says so.
"""

from __future__ import annotations

from aiohttp import web

from mcp_engine.api.rest.edge import AUTH, ENGINE, TENANT_HEADER
from mcp_engine.errors import EngineError, PayloadTooLarge

DEFAULT_LIMIT = web.AppKey("default_body_limit", int)  # the operator's default: MCP_MAX_BODY_BYTES


async def body_limit(request: web.Request) -> int:
    engine, auth = request.app[ENGINE], request.app[AUTH]
    claimed = request.headers.get(TENANT_HEADER) or request.query.get("tenant_id")
    try:
        tenant = await auth.tenant(request.headers.get("Authorization"), claimed)
    except EngineError:  # the handler refuses it properly; its body is read within the default
        return request.app[DEFAULT_LIMIT]
    return (await engine.catalogue.grants(tenant)).max_body_bytes or request.app[DEFAULT_LIMIT]


async def read_body(request: web.Request) -> bytes:
    """The body, or ``PayloadTooLarge`` (413) past the tenant's limit."""
    limit = await body_limit(request)
    too_large = PayloadTooLarge(
        f"the request body is larger than this tenant may send: {limit} bytes", {"limit": limit}
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        return await request.clone(client_max_size=limit).read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None

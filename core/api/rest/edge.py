"""What every REST handler shares: typed app keys, the parsed request (``Call``), and JSON responses.

Handlers never read raw input: the route table names a model for the path, the query and the body,
and ``Call`` holds what those models accepted, so the OpenAPI document and the checks cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel

from mcp_engine.errors import PermissionDenied
from mcp_engine.flow.loader import Source
from mcp_engine.logs import REQUEST_TENANT
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter

M = TypeVar("M", bound=BaseModel)

TENANT_HEADER = "X-Tenant-ID"


class Auth(Protocol):
    """What the adapter needs of ``mcp_engine.auth.Authenticator`` (SPEC §7, Auth)."""

    @property
    def mode(self) -> str:
        """ "on" or "off"."""
        ...

    async def tenant(self, authorization: str | None, claimed: str | None) -> str: ...

    async def admin(self, authorization: str | None) -> None: ...

    async def create_tenant(self, tenant_id: str) -> Any: ...

    async def create_key(self, tenant_id: str) -> tuple[str, str]: ...

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool: ...


ENGINE = web.AppKey("engine", ExecutionService)
AUTH = web.AppKey("auth", Auth)
LIMITER = web.AppKey("limiter", Limiter)
OPENAPI = web.AppKey("openapi", bytes)  # the document, serialised once at start


@dataclass(frozen=True)
class Call:
    """One request after the edge checked it: path parameters, query and body as the route's models."""

    request: web.Request
    path: dict[str, str]
    query: BaseModel | None = None
    body: BaseModel | None = None
    source: Source | None = None  # a flow document body's text, for the problems' line numbers

    @property
    def engine(self) -> ExecutionService:
        return self.request.app[ENGINE]

    @property
    def auth(self) -> Auth:
        return self.request.app[AUTH]

    @property
    def authorization(self) -> str | None:
        return self.request.headers.get("Authorization")

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model), f"route declares no {model.__name__} query"
        return self.query

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model), f"route declares no {model.__name__} body"
        return self.body

    def claimed_tenant(self, named: str | None = None) -> str | None:
        """The tenant the request names (header, query, or ``named`` from its body); with auth off this
        is the tenant, with auth on it must match the key's. Two different names are refused."""
        claims = {
            c
            for c in (self.request.headers.get(TENANT_HEADER), self.request.query.get("tenant_id"), named)
            if c
        }
        if len(claims) > 1:
            raise PermissionDenied("the request names more than one tenant", {"tenants": sorted(claims)})
        return next(iter(claims), None)

    def names_tenant(self) -> bool:
        return bool(self.authorization or self.claimed_tenant())

    async def tenant(self, named: str | None = None) -> str:
        """The authenticated tenant; raises Unauthenticated / PermissionDenied / InvalidInput."""
        tenant = await self.auth.tenant(self.authorization, self.claimed_tenant(named))
        self.request[REQUEST_TENANT] = tenant  # for the access log line (mcp_engine.logs)
        return tenant


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Serialise once with orjson (the turn's reply is a plain dict; no model on the hot path)."""
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def model_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), status=status, content_type="application/json")

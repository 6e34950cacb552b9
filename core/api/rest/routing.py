"""The route table: one record per operation, from which both the aiohttp routes and the OpenAPI
document are built, so the document always describes what the server checks and answers.

A ``Route`` names its models (path parameters come from the path and ``PATH_PARAMS``); ``endpoint``
wraps the handler with the edge checks, ``openapi_document`` describes the same table.
"""

from __future__ import annotations

import http
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError, create_model
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from mcp_engine.api.inputs import ConversationId, TenantId
from mcp_engine.api.rest import models
from mcp_engine.api.rest.bodies import read_body
from mcp_engine.api.rest.edge import TENANT_HEADER, Call
from mcp_engine.api.rest.middleware import invalid
from mcp_engine.errors import InvalidInput
from mcp_engine.experiments.models import ExperimentId
from mcp_engine.flow.loader import Source, parse_document
from mcp_engine.flow.numbers import MARKERS, nonfinite_pointers

Handler = Callable[[Call], Awaitable[web.StreamResponse]]
Access = Literal["public", "tenant", "admin"]
Refs = dict[tuple[Any, JsonSchemaMode], str]  # (model, mode) -> "#/components/schemas/..."
Success = type[BaseModel] | tuple[str, ...] | None  # a JSON model, non-JSON media types, or no body

PATH_PARAMS: dict[str, Any] = {
    "flow_id": models.FlowId,
    "version": models.Version,
    "conversation_id": ConversationId,
    "tenant_id": TenantId,
    "key_id": models.KeyId,
    "experiment_id": ExperimentId,
}
REF = "#/components/schemas/{model}"
_TEXT_OR_JSON = ("string", "object")  # a non-model body: text, or a JSON object (the document itself)
YAML_MEDIA = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    ok: dict[int, Success]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    access: Access = "tenant"
    # The body's documented schema when the handler checks the body itself (reporting every problem at
    # once, 422) and ``body`` only takes it as a JSON object: what clients see is the real shape.
    body_schema: type[BaseModel] | None = None
    # A flow document body: YAML is accepted too (SPEC §2), and its problems carry the body's lines.
    document_body: bool = False
    path_model: type[BaseModel] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        names = re.findall(r"{(\w+)}", self.path)
        if names:
            fields: dict[str, Any] = {name: (PATH_PARAMS[name], ...) for name in names}
            model = create_model(f"{self.operation_id}_path", **fields)
            object.__setattr__(self, "path_model", model)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def error_statuses(self) -> list[int]:
        """400 always (bad query, body or header); 404 whenever the path has parameters."""
        statuses = {400, *self.errors}
        if self.path_model is not None:
            statuses.add(404)
        if self.body is not None:
            statuses.add(413)
        if self.access != "public":
            statuses |= {401, 403}
        return sorted(statuses)


def _parse(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, where) from None


def _parse_body(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc, "body") from None
    if any(marker in raw for marker in MARKERS) and (found := nonfinite_pointers(body.model_dump())):
        raise InvalidInput(
            f"invalid request body at {found[0]}: NaN and Infinity are not JSON numbers",
            {"errors": [{"loc": ["body"], "pointer": at, "msg": "not a JSON number"} for at in found]},
        )
    return body


async def _document_body(model: type[BaseModel], request: web.Request) -> tuple[BaseModel, Source]:
    """A flow document as JSON or, by its ``Content-Type``, YAML (safe loader, bounded size and aliases),
    and its text, so the validator's problems can say on which line they are."""
    raw = await read_body(request)
    if request.content_type in YAML_MEDIA:
        body = _parse(model, parse_document(raw, source="the request body"), "body")
    else:
        body = _parse_body(model, raw)
    return body, Source(None, None, raw.decode("utf-8", "replace"))


def endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler: check path, query and body against the route's models, then call it."""

    async def handle(request: web.Request) -> web.StreamResponse:
        path: dict[str, str] = {}
        if route.path_model is not None:
            path = _parse(route.path_model, dict(request.match_info), "path").model_dump()
        query = _parse(route.query, dict(request.query), "query") if route.query else None
        if route.document_body and route.body is not None:
            document, source = await _document_body(route.body, request)
            return await route.handler(Call(request, path, query, document, source))
        body = _parse_body(route.body, await read_body(request)) if route.body else None
        return await route.handler(Call(request, path, query, body))

    handle.__name__ = route.operation_id
    return handle


def add_routes(app: web.Application, routes: Sequence[Route]) -> None:
    app.router.add_routes([web.route(r.method, r.path, endpoint(r)) for r in routes])


# --- the OpenAPI document -----------------------------------------------------------------------


def _parameters(route: Route) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for where, model in (("path", route.path_model), ("query", route.query)):
        if model is None:
            continue
        schema = model.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": where, "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            out.append(param)
    if route.access == "tenant":
        about = "Names the tenant when auth is off; with auth on it must be the key's tenant."
        out.append({"name": TENANT_HEADER, "in": "header", "required": False, "schema": {"type": "string"}})
        out[-1]["description"] = about
        if route.query is None or "tenant_id" not in route.query.model_fields:
            out.append({"name": "tenant_id", "in": "query", "required": False, "schema": {"type": "string"}})
            out[-1]["description"] = about
    return out


def _success(content: Success, refs: Refs) -> dict[str, Any]:
    if content is None:
        return {}
    if isinstance(content, tuple):
        return {
            "content": {
                media: {"schema": {"type": _TEXT_OR_JSON[media == "application/json"]}} for media in content
            }
        }
    return {"content": {"application/json": {"schema": {"$ref": refs[(content, "serialization")]}}}}


def _operation(route: Route, refs: Refs) -> dict[str, Any]:
    doc = (route.handler.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": _parameters(route),
        "responses": {},
    }
    if doc:
        operation["description"] = doc
    if route.body is not None:
        schema = {"$ref": refs[(route.body_schema or route.body, "validation")]}
        media = ["application/json", *(sorted(YAML_MEDIA) if route.document_body else ())]
        operation["requestBody"] = {"required": True, "content": {m: {"schema": schema} for m in media}}
    if route.access != "public":
        operation["security"] = [{"bearer": []}] if route.access == "admin" else [{"bearer": []}, {}]
    for status, content in route.ok.items():
        operation["responses"][str(status)] = {"description": http.HTTPStatus(status).phrase}
        operation["responses"][str(status)].update(_success(content, refs))
    for status in route.error_statuses():
        response: dict[str, Any] = {"description": http.HTTPStatus(status).phrase}
        response.update(_success(models.ErrorBody, refs))
        if status == 503:
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        operation["responses"][str(status)] = response
    return operation


def _schemas(routes: Sequence[Route]) -> tuple[Refs, dict[str, Any]]:
    """Every body and response model's JSON Schema, once, under components/schemas (a model used both
    ways gets two entries when its input and output schemas differ)."""
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(models.ErrorBody, "serialization"): None}
    for route in routes:
        if route.body is not None:
            wanted[(route.body_schema or route.body, "validation")] = None
        for content in route.ok.values():
            if isinstance(content, type):
                wanted[(content, "serialization")] = None
    keys, defs = models_json_schema(list(wanted), ref_template=REF)
    refs: Refs = {(model, mode): schema["$ref"] for (model, mode), schema in keys.items()}
    return refs, defs.get("$defs", {})


def openapi_document(routes: Sequence[Route], title: str, version: str) -> dict[str, Any]:
    refs, schemas = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "MCP Engine REST API v2 (SPEC.md §7)."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A tenant key."}
            },
        },
    }


def openapi_bytes(routes: Sequence[Route], title: str, version: str) -> bytes:
    return orjson.dumps(openapi_document(routes, title, version))

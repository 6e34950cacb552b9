"""``/v2/flows``: create, validate, list, read, publish, delete and draw flow versions of a tenant.

Create, validate, publish and delete go through the engine's flow catalogue, which validates documents
in the tenant's view of the registry: a flow naming a plugin the tenant has not enabled fails when it is
stored or published (ARCHITECTURE.md, "Plugins"), with the problem's JSON pointer, the plugin and the tenant.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from mcp_engine.api.rest import models
from mcp_engine.api.rest.edge import Call, json_response, model_response
from mcp_engine.api.rest.middleware import Unavailable
from mcp_engine.api.rest.routing import Route
from mcp_engine.errors import FlowNotFound, FlowValidationError, PermissionDenied
from mcp_engine.flow.graph import graph_data, to_dot, to_mermaid, to_svg
from mcp_engine.flow.models import Flow
from mcp_engine.flow.validate import ValidationResult, validate_data
from mcp_engine.registry import Registry
from mcp_engine.store.base import FlowVersion

GRAPH_MEDIA = {
    "mermaid": "text/plain",
    "dot": "text/vnd.graphviz",
    "svg": "image/svg+xml",
    "json": "application/json",
}


def _fields(stored: FlowVersion) -> dict[str, Any]:
    return {
        "tenant_id": stored.tenant_id,
        "flow_id": stored.flow_id,
        "version": stored.version,
        "name": str(stored.document.get("name", "")),
        "status": stored.status,
        "created_at": stored.created_at,
        "published_at": stored.published_at,
    }


def _summary(stored: FlowVersion) -> models.FlowVersionSummary:
    return models.FlowVersionSummary(**_fields(stored))


def _problems(result: ValidationResult) -> list[models.Problem]:
    return [models.Problem(**p.to_dict()) for p in result.problems]


async def _document_tenant(call: Call, document: dict[str, Any]) -> str:
    """The caller's tenant, which must be the one the document names (if it names one)."""
    named = document.get("tenant_id")
    named = named if isinstance(named, str) and named else None
    tenant_id = await call.tenant(named)
    if named is not None and named != tenant_id:
        raise PermissionDenied("the flow document belongs to another tenant", {"tenant_id": named})
    return tenant_id


async def _stored(call: Call, tenant_id: str) -> FlowVersion:
    """The published version of the path's flow, else its latest."""
    flow_id = call.path["flow_id"]
    stored = await call.engine.store.published(tenant_id, flow_id)
    if stored is None:
        versions = await call.engine.store.list_versions(tenant_id, flow_id)
        if not versions:
            raise FlowNotFound(f"flow '{flow_id}' not found", {"flow_id": flow_id})
        stored = versions[-1]
    return stored


async def create_flow(call: Call) -> web.StreamResponse:
    """Validate the document with the tenant's enabled plugins and store it as a draft version.
    201 when stored; 200 when this exact version was already stored with the same content; 409 when
    the version exists with other content (versions are immutable); 422 lists every problem."""
    document = call.body_as(models.FlowDocument).root
    tenant_id = await _document_tenant(call, document)
    stored, result, existed = await call.engine.catalogue.create(tenant_id, document, call.source)
    created = models.FlowCreated(**_fields(stored), document=stored.document, problems=_problems(result))
    return model_response(created, 200 if existed else 201)


async def validate_flow(call: Call) -> web.StreamResponse:
    """Every error and warning of the document, as the tenant would get them on create; nothing is stored."""
    document = call.body_as(models.FlowDocument).root
    tenant_id = await _document_tenant(call, document)
    result = await call.engine.catalogue.validate(tenant_id, document, call.source)
    return model_response(models.ValidationReport(valid=result.ok, problems=_problems(result)))


async def list_flows(call: Call) -> web.StreamResponse:
    flows = await call.engine.store.list_flows(await call.tenant())
    return model_response(models.FlowList(flows=[_summary(f) for f in flows]))


async def get_flow(call: Call) -> web.StreamResponse:
    tenant_id = await call.tenant()
    stored = await _stored(call, tenant_id)
    versions = await call.engine.store.list_versions(tenant_id, stored.flow_id)
    published = next((v.version for v in versions if v.status == "published"), None)
    detail = models.FlowDetail(
        **_fields(stored),
        document=stored.document,
        published_version=published,
        latest_version=versions[-1].version,
        version_count=len(versions),
    )
    return model_response(detail)


async def list_versions(call: Call) -> web.StreamResponse:
    flow_id = call.path["flow_id"]
    versions = await call.engine.store.list_versions(await call.tenant(), flow_id)
    if not versions:
        raise FlowNotFound(f"flow '{flow_id}' not found", {"flow_id": flow_id})
    return model_response(models.VersionList(flow_id=flow_id, versions=[_summary(v) for v in versions]))


async def _version(call: Call, tenant_id: str, version: str | None = None) -> FlowVersion:
    flow_id, version = call.path["flow_id"], version or call.path["version"]
    stored = await call.engine.store.get_flow_version(tenant_id, flow_id, version)
    if stored is None:
        raise FlowNotFound(f"flow '{flow_id}' version {version} not found", {"flow_id": flow_id})
    return stored


async def get_version(call: Call) -> web.StreamResponse:
    stored = await _version(call, await call.tenant())
    return model_response(models.FlowVersionOut(**_fields(stored), document=stored.document))


async def publish_version(call: Call) -> web.StreamResponse:
    """Make this version the one new conversations use (an older one: a rollback). It is validated
    again first: the tenant's enabled plugins may have changed since it was stored."""
    tenant_id = await call.tenant()
    published = await call.engine.catalogue.publish(tenant_id, call.path["flow_id"], call.path["version"])
    return model_response(models.FlowVersionOut(**_fields(published), document=published.document))


async def delete_flow(call: Call) -> web.StreamResponse:
    """Delete every version of the flow; conversations already on it keep their context."""
    flow_id = call.path["flow_id"]
    if not await call.engine.catalogue.delete(await call.tenant(), flow_id):
        raise FlowNotFound(f"flow '{flow_id}' not found", {"flow_id": flow_id})
    return web.Response(status=204)


async def _drawing(flow: Flow, fmt: str, registry: Registry) -> web.Response:
    if fmt == "json":
        return json_response(graph_data(flow, registry))
    if fmt == "svg":
        try:
            text = await asyncio.to_thread(to_svg, flow, registry)  # runs Graphviz: off the event loop
        except RuntimeError as exc:
            raise Unavailable(str(exc), {"format": "svg"}) from None
    else:
        text = to_mermaid(flow, registry) if fmt == "mermaid" else to_dot(flow, registry)
    return web.Response(text=text, content_type=GRAPH_MEDIA[fmt])


async def flow_graph(call: Call) -> web.StreamResponse:
    """The published version (else the latest, or ``version``) drawn as Mermaid, Graphviz DOT or SVG;
    ``json`` says which state and transition each node and edge id of the DOT and SVG stands for."""
    query = call.query_as(models.StoredGraphQuery)
    tenant_id = await call.tenant()
    if query.version is None:
        stored = await _stored(call, tenant_id)
    else:
        stored = await _version(call, tenant_id, query.version)
    flow = validate_data(stored.document, call.engine.registry).raise_for_errors()
    return await _drawing(flow, query.format, call.engine.registry)


async def draw_document(call: Call) -> web.StreamResponse:
    """Draw a flow document without storing it, even one with reference errors (a transition to a
    missing state is drawn as a missing node), so an editor can show where its problems are. Only a
    document that is not a flow at all (the schema pass fails) is refused, with every problem (422)."""
    document = call.body_as(models.FlowDocument).root
    tenant_id = await _document_tenant(call, document)
    registry = await call.engine.catalogue.view(tenant_id)
    result = validate_data(document, registry, call.source)
    if result.flow is None:
        raise FlowValidationError(result.problems)
    return await _drawing(result.flow, call.query_as(models.GraphQuery).format, registry)


FLOW_VERSION = "/v2/flows/{flow_id}/versions/{version}"
ROUTES = (
    Route(
        "POST",
        "/v2/flows",
        create_flow,
        "Create a flow version (a draft)",
        "flows",
        {201: models.FlowCreated, 200: models.FlowCreated},
        body=models.FlowDocument,
        document_body=True,
        errors=(409, 422),
    ),
    Route(
        "POST",
        "/v2/flows/validate",
        validate_flow,
        "Validate a flow document",
        "flows",
        {200: models.ValidationReport},
        body=models.FlowDocument,
        document_body=True,
    ),
    Route("GET", "/v2/flows", list_flows, "List the tenant's flows", "flows", {200: models.FlowList}),
    Route("GET", "/v2/flows/{flow_id}", get_flow, "Get a flow", "flows", {200: models.FlowDetail}),
    Route(
        "GET",
        "/v2/flows/{flow_id}/versions",
        list_versions,
        "List a flow's versions",
        "flows",
        {200: models.VersionList},
    ),
    Route("GET", FLOW_VERSION, get_version, "Get a flow version", "flows", {200: models.FlowVersionOut}),
    Route(
        "POST",
        FLOW_VERSION + "/publish",
        publish_version,
        "Publish a flow version",
        "flows",
        {200: models.FlowVersionOut},
        errors=(422,),
    ),
    Route("DELETE", "/v2/flows/{flow_id}", delete_flow, "Delete a flow", "flows", {204: None}),
    Route(
        "GET",
        "/v2/flows/{flow_id}/graph",
        flow_graph,
        "Draw a flow",
        "flows",
        {200: tuple(GRAPH_MEDIA.values())},
        query=models.StoredGraphQuery,
        errors=(503,),
    ),
    Route(
        "POST",
        "/v2/flows/graph",
        draw_document,
        "Draw a flow document (nothing stored)",
        "flows",
        {200: tuple(GRAPH_MEDIA.values())},
        body=models.FlowDocument,
        document_body=True,
        query=models.GraphQuery,
        errors=(422, 503),
    ),
)

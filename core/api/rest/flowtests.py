"""``/v2/flows/{flow_id}/test`` and ``/v2/flows/{flow_id}/replay``: flow tests and replay for the playground.

Both run on throwaway embedded engines (``mcp_engine.flowtest``), never on the serving engine's store:
the tenant's flows are copied in (the flow under test or the candidate, and the published versions of
its other flows, for sub-flows), integrations are answered by the request's fakes (no outbound call is
made on a test's behalf), and no event reaches the serving engine's sinks. A run takes one
``MAX_PARALLEL_EXECUTIONS`` slot and is bounded in size by its request model.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_engine.api.inputs import ConversationId
from mcp_engine.api.rest.edge import LIMITER, Call, model_response
from mcp_engine.api.rest.models import Version
from mcp_engine.api.rest.routing import Route
from mcp_engine.errors import InvalidInput, PermissionDenied
from mcp_engine.flowtest.history import read_histories
from mcp_engine.flowtest.replay import ReplayReport, replay
from mcp_engine.flowtest.report import TestReport
from mcp_engine.flowtest.spec import CasesBody, Fake
from mcp_engine.flowtest.suite import run_posted, stored_flow_set

MAX_CASES = 100  # per request (a case is an engine of its own: ~50 ms)
MAX_TURNS = 2_000  # per request, over all its cases
MAX_CONVERSATIONS = 100


class FlowTestRequest(CasesBody):
    """Test cases as a test file writes them (docs/flows.md, "Testing flows"), for this flow."""

    version: Version | None = Field(None, description="The version to test; default: published, else latest")

    @model_validator(mode="after")
    def _bounded(self) -> FlowTestRequest:
        if len(self.cases) > MAX_CASES:
            raise ValueError(f"{len(self.cases)} cases in one request; at most {MAX_CASES}")
        turns = sum(len(case.turns) for case in self.cases)
        if turns > MAX_TURNS:
            raise ValueError(f"{turns} turns in one request; at most {MAX_TURNS}")
        return self


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_ids: list[ConversationId] = Field(min_length=1, max_length=MAX_CONVERSATIONS)
    version: Version | None = Field(None, description="A stored candidate version; default: the latest")
    document: dict[str, Any] | None = Field(None, description="A candidate flow document, not stored")
    fakes: list[Fake] = Field(default_factory=list, description="Integration answers, as in a test file")
    channel: str = Field("default", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_candidate(self) -> ReplayRequest:
        if self.version is not None and self.document is not None:
            raise ValueError("give version or document, not both")
        return self


async def test_flow(call: Call) -> web.StreamResponse:
    """Run conversation test cases against the flow (``version``, else the published version, else the
    latest), each on a throwaway engine: a result per case and the transition coverage. A failing case
    is a 200 with ``ok: false``; 422 when the flow does not validate."""
    body = call.body_as(FlowTestRequest)
    tenant_id = await call.tenant()
    registry = await call.engine.catalogue.view(tenant_id)
    flows = await stored_flow_set(call.engine.store, registry, tenant_id, call.path["flow_id"], body.version)
    async with call.request.app[LIMITER].slot():
        report = await run_posted(body, flows, registry, call.engine.settings)
    return model_response(report)


async def replay_flow(call: Call) -> web.StreamResponse:
    """Replay the tenant's recorded conversations against a candidate (``document``, or ``version``, else
    the flow's latest version): per conversation, the first turn whose state or messages differ."""
    body = call.body_as(ReplayRequest)
    tenant_id = await call.tenant()
    flow_id = call.path["flow_id"]
    if body.document is not None:
        named = body.document.get("tenant_id")
        if named != tenant_id:
            raise PermissionDenied("the candidate document belongs to another tenant", {"tenant_id": named})
        if body.document.get("flow_id") != flow_id:
            raise InvalidInput(
                f"the candidate document is not flow '{flow_id}'", {"field": "document.flow_id"}
            )
    store = call.engine.store
    version = body.version
    if version is None and body.document is None:
        versions = await store.list_versions(tenant_id, flow_id)
        version = versions[-1].version if versions else None
    registry = await call.engine.catalogue.view(tenant_id)
    flows = await stored_flow_set(store, registry, tenant_id, flow_id, version, body.document)
    recorded = await read_histories(store, tenant_id, body.conversation_ids)
    async with call.request.app[LIMITER].slot():
        report = await replay(recorded, flows, registry, call.engine.settings, body.fakes, body.channel)
    return model_response(report)


ROUTES = (
    Route(
        "POST",
        "/v2/flows/{flow_id}/test",
        test_flow,
        "Run test cases against a flow",
        "flows",
        {200: TestReport},
        body=FlowTestRequest,
        errors=(422, 503),
    ),
    Route(
        "POST",
        "/v2/flows/{flow_id}/replay",
        replay_flow,
        "Replay conversations against a candidate version",
        "flows",
        {200: ReplayReport},
        body=ReplayRequest,
        errors=(422, 503),
    ),
)

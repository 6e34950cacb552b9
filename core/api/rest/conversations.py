"""``/v2/conversations``: a turn, the conversation's state, reset and history.

``send_message`` is the hot path: the request is checked by its model once, the turn runs inside a
``Limiter`` slot (over ``MAX_PARALLEL_EXECUTIONS`` it is refused at once with 503 + Retry-After), and the
engine's reply dict is serialised once with orjson, never rebuilt through a model.
"""

from __future__ import annotations

from aiohttp import web

from mcp_engine.api.rest import models
from mcp_engine.api.rest.edge import LIMITER, Call, json_response, model_response
from mcp_engine.api.rest.routing import Route
from mcp_engine.errors import ConversationNotFound
from mcp_engine.logs import REQUEST_STATE
from mcp_engine.runtime.execution import Hints, InboundMessage
from mcp_engine.runtime.limits import priority_of


async def send_message(call: Call) -> web.StreamResponse:
    """Process one message (one turn) and return the reply: every message of the turn in order, the final
    state, the context changes, the actions performed, confidence scores, timing and the A/B variant.
    A ``metadata.message_id`` seen before returns the stored reply and changes nothing."""
    body = call.body_as(models.MessageRequest)
    tenant_id = await call.tenant(body.tenant_id)
    message = InboundMessage(
        text=body.content.text,
        type=body.content.type,
        attributes=body.content.attributes,
        user_id=body.user_id,
        channel=body.channel,
        metadata=body.metadata,
        user_profile=body.user_profile,
    )
    hints = Hints(body.hints.force_flow, body.hints.priority, body.hints.bypass_cache) if body.hints else None
    async with call.request.app[LIMITER].slot(priority_of(hints.priority if hints else "")):
        reply = await call.engine.process_message(tenant_id, call.path["conversation_id"], message, hints)
    call.request[REQUEST_STATE] = reply["current_state"]  # for the access log line (mcp_engine.logs)
    return json_response(reply)


async def get_conversation(call: Call) -> web.StreamResponse:
    """The conversation's current state and its whole context."""
    tenant_id = await call.tenant()
    conversation_id = call.path["conversation_id"]
    context = await call.engine.get_state(tenant_id, conversation_id)
    state = models.ConversationState(
        conversation_id=conversation_id,
        tenant_id=tenant_id,
        current_state=context.get("current_state"),
        flow_id=context.get("flow_id"),
        flow_version=context.get("flow_version"),
        ab_variant=(context.get("run") or {}).get("variant", ""),
        user_profile=context.get("user_profile") or {},
        context=context,
    )
    return model_response(state)


async def reset_conversation(call: Call) -> web.StreamResponse:
    """Forget the context (the next message starts afresh); the history is kept."""
    conversation_id = call.path["conversation_id"]
    if not await call.engine.reset(await call.tenant(), conversation_id):
        raise ConversationNotFound(f"conversation '{conversation_id}' not found")
    return web.Response(status=204)


async def conversation_history(call: Call) -> web.StreamResponse:
    """Events newest first, ``limit`` per page; pass ``next_before`` as ``before`` for the next page."""
    query = call.query_as(models.HistoryQuery)
    conversation_id = call.path["conversation_id"]
    tenant_id = await call.tenant()
    events = await call.engine.store.history(tenant_id, conversation_id, query.limit, query.before)
    next_before = events[-1]["seq"] if len(events) == query.limit else None
    return json_response({"conversation_id": conversation_id, "events": events, "next_before": next_before})


CONVERSATION = "/v2/conversations/{conversation_id}"
ROUTES = (
    Route(
        "POST",
        CONVERSATION + "/messages",
        send_message,
        "Send a message (one turn)",
        "conversations",
        {200: models.MessageReply},
        body=models.MessageRequest,
        errors=(409, 503, 504),
    ),
    Route(
        "GET",
        CONVERSATION,
        get_conversation,
        "Get a conversation's state",
        "conversations",
        {200: models.ConversationState},
    ),
    Route("DELETE", CONVERSATION, reset_conversation, "Reset a conversation", "conversations", {204: None}),
    Route(
        "GET",
        CONVERSATION + "/history",
        conversation_history,
        "A conversation's history",
        "conversations",
        {200: models.HistoryPage},
        query=models.HistoryQuery,
    ),
)

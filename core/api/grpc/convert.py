"""Protobuf messages <-> the engine's plain types, kept apart from the servicer so each mapping is one
small pure function (tested through the real server, readable on its own).

The engine speaks dicts and dataclasses; the wire speaks the seed's messages. Two places need care:
``context_updates`` is the seed's ``map<string, string>``, so each value travels JSON-encoded to keep its
type (``2`` vs ``"2"``, ``null``); and the context of ``GetConversationState`` is a ``Struct``, whose numbers
are doubles by definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from mcp_engine.api.grpc import mcp_pb2
from mcp_engine.api.inputs import check_fields
from mcp_engine.runtime.execution import Hints, InboundMessage


def inbound(request: mcp_pb2.ProcessMessageRequest) -> tuple[InboundMessage, Hints]:
    """The message and hints of a request, checked with REST's limits (``mcp_engine.api.inputs``). Unset
    proto3 fields arrive as "": an empty ``content.type`` is text, an empty ``force_flow`` forces nothing,
    an empty ``channel`` keeps the conversation's."""
    content = request.content
    check_fields(
        tenant_id=request.tenant_id or None,
        conversation_id=request.conversation_id,
        user_id=request.user_id,
        channel=request.channel,
        metadata=dict(request.metadata),
        attributes=dict(content.attributes),
    )
    message = InboundMessage(
        text=content.text,
        type=content.type or "text",
        attributes=dict(content.attributes),
        user_id=request.user_id,
        channel=request.channel,
        metadata=dict(request.metadata),
        user_profile=json_format.MessageToDict(request.user_profile)
        if request.HasField("user_profile")
        else None,
    )
    hints = Hints(
        force_flow=request.hints.force_flow or None,
        priority=request.hints.priority,
        bypass_cache=request.hints.bypass_cache,
    )
    return message, hints


def conversation(request: mcp_pb2.GetStateRequest | mcp_pb2.ResetRequest) -> str:
    """The conversation id of a state or reset request, checked like ``ProcessMessage``'s."""
    check_fields(tenant_id=request.tenant_id or None, conversation_id=request.conversation_id)
    return request.conversation_id


def message_content(message: Mapping[str, Any]) -> mcp_pb2.MessageContent:
    """One outbound message (``OutboundMessage.to_dict()``) as ``MessageContent``."""
    return mcp_pb2.MessageContent(
        type=message["type"], text=message["text"], attributes=message.get("attributes") or {}
    )


def process_reply(reply: Mapping[str, Any]) -> mcp_pb2.ProcessMessageResponse:
    """The reply dict of ``ExecutionService.process_message`` as ``ProcessMessageResponse``."""
    return mcp_pb2.ProcessMessageResponse(
        conversation_id=reply["conversation_id"],
        current_state=reply["current_state"],
        response=message_content(reply["response"]),
        context_updates={
            path: orjson.dumps(value).decode() for path, value in reply["context_updates"].items()
        },
        actions_performed=reply["actions_performed"],
        processing_time_ms=reply["processing_time_ms"],
        messages=[message_content(m) for m in reply["messages"]],
        confidence_scores=reply["confidence_scores"],
        ab_variant=reply["ab_variant"],
        flow_id=reply["flow_id"],
        flow_version=reply["flow_version"],
    )


def state_reply(context: Mapping[str, Any]) -> mcp_pb2.GetStateResponse:
    """A conversation's stored context as ``GetStateResponse`` (the whole context in ``context``)."""
    struct, profile = Struct(), Struct()
    struct.update(context)
    profile.update(context.get("user_profile") or {})
    return mcp_pb2.GetStateResponse(
        conversation_id=context["conversation_id"],
        current_state=context["current_state"],
        flow_id=context["flow_id"],
        flow_version=context["flow_version"],
        context=struct,
        ab_variant=(context.get("run") or {}).get("variant", ""),
        user_profile=profile,
    )

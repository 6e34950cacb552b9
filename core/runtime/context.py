"""The conversation context: a plain dict, created here, read through the expression namespace.

It is never a pydantic model on the hot path: validated at the edges, serialised once per turn.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, NamedTuple

from mcp_engine.flow.models import Flow

HISTORY_KEEP = 20  # previous_states and intent_history keep the last N entries


def new_context(
    tenant_id: str, conversation_id: str, user_id: str, channel: str, flow: Flow, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    context: dict[str, Any] = {
        "conversation_id": conversation_id,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "channel": channel,
        "user_profile": {},
        "intent_history": [],
        "error_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    start_run(context, flow)
    return context


def start_run(context: dict[str, Any], flow: Flow) -> None:
    """A new run (a new conversation, or the message after an ``end``): slots cleared, variables reset."""
    context.update(
        flow_id=flow.flow_id,
        flow_version=flow.version,
        current_state=None,
        previous_states=[],
        slots={},
        variables=dict(flow.variables),
        integration_results={},
        intent=None,
        return_stack=[],
        no_match_count=0,
        state_data={},
        last_integration=None,
        timer=None,
        run={"id": uuid.uuid4().hex, "completed": False},
    )


def run_flow(context: dict[str, Any]) -> str:
    """The flow the run started in, not a sub-flow it is in: the bottom frame of the return stack was
    pushed by it (a sub-flow or a digression starts from the flow the run is in)."""
    stack = context.get("return_stack") or []
    return str(stack[0]["flow_id"] if stack else context["flow_id"])


def remember(items: list[Any], item: Any) -> None:
    items.append(item)
    if len(items) > HISTORY_KEEP:
        del items[: len(items) - HISTORY_KEEP]


class Keep(NamedTuple):
    """What ``recent_messages`` holds: the last ``messages`` messages in and out (the flow's
    ``settings.history_messages``, for model calls) and enough older ones that the last ``user`` user
    messages stay (a ``context_aware`` state's earlier messages and the current one)."""

    messages: int = 0
    user: int = 0


def keep_message(context: dict[str, Any], keep: Keep, role: str, text: str) -> None:
    """Remember a message in ``recent_messages`` as ``keep`` says; ``Keep()`` keeps none."""
    if not (keep.messages or keep.user):
        return
    messages = context.setdefault("recent_messages", [])
    messages.append({"role": role, "text": text})
    users = sum(1 for message in messages if message["role"] == "user")
    while len(messages) > keep.messages and (messages[0]["role"] != "user" or users > keep.user):
        if messages.pop(0)["role"] == "user":
            users -= 1


def namespace(context: dict[str, Any], event: dict[str, Any] | None, failed: bool = False) -> dict[str, Any]:
    """The names of SPEC §4's expression language (and of templates) over the context; ``failed``: the
    current state called ``TurnView.fail`` (``slot_filling.exhausted``)."""
    intent = context.get("intent") or {}
    return {
        "slots": context.get("slots", {}),
        "variables": context.get("variables", {}),
        "user_profile": context.get("user_profile", {}),
        "intent": intent,
        "event": event or {},
        "integration_results": context.get("integration_results", {}),
        "context": context,
        "slot_filling": {"exhausted": failed},
    }


def flat_updates(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed in slots and variables, as ``{"slots.size": "large"}`` (None for a removed key)."""
    updates: dict[str, Any] = {}
    for part in ("slots", "variables"):
        old, new = before.get(part) or {}, after.get(part) or {}
        for key in new.keys() | old.keys():
            if old.get(key, ...) != new.get(key, ...):
                updates[f"{part}.{key}"] = new.get(key)
    if before.get("current_state") != after.get("current_state"):
        updates["current_state"] = after.get("current_state")
    return updates

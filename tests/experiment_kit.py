"""What the experiment tests share: experiment documents over the example pizza flow, a tiny survey flow
whose runs complete or miss on cue (for scripted populations), and a way to send a message."""

from __future__ import annotations

import copy
from typing import Any

from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from tests.engine_fixtures import TENANT, example_flow

GREETING = "Hi, welcome to Pronto Pizza!"
SHORT_GREETING = "Hi! Pizza?"
SHORT_PATCH = {"states": {"greeting": {"config": {"response_templates": {"default": SHORT_GREETING}}}}}

SURVEY: dict[str, Any] = {
    "flow_id": "survey",
    "tenant_id": TENANT,
    "name": "Survey",
    "version": "1.0.0",
    "initial_state": "ask",
    "intents": {"yes": {"patterns": ["^yes$"]}},
    "states": {
        "ask": {
            "type": "intent",
            "config": {"intent_patterns": ["yes"]},
            "transitions": [{"condition": "intent_match", "condition_value": "yes", "target_state": "done"}],
        },
        "done": {"type": "end", "config": {"response_templates": {"default": "Thanks!"}}},
    },
}


def variant(name: str, percentage: float, **modifications: Any) -> dict[str, Any]:
    return {"name": name, "percentage": percentage, "modifications": modifications}


def document(
    experiment_id: str = "short-greeting", flow_id: str = "pizza", *variants: dict[str, Any]
) -> dict[str, Any]:
    """An experiment document; by default control (the published pizza) against its short greeting."""
    chosen = list(variants) or [variant("control", 50), variant("short", 50, merge_patch=SHORT_PATCH)]
    return {"experiment_id": experiment_id, "flow_id": flow_id, "name": "A test", "variants": chosen}


def pizza_version(version: str, greeting: str) -> dict[str, Any]:
    flow = copy.deepcopy(example_flow("pizza"))
    flow["version"] = version
    flow["states"]["greeting"]["config"]["response_templates"] = {"default": greeting}
    return flow


async def say(
    engine: ExecutionService,
    conversation_id: str,
    text: str,
    user_id: str = "",
    flow: str = "pizza",
    tenant_id: str = TENANT,
) -> dict[str, Any]:
    """One turn on ``flow`` (forcing it only starts a run when the conversation is on another flow)."""
    message = InboundMessage(text=text, user_id=user_id)
    return await engine.process_message(tenant_id, conversation_id, message, Hints(force_flow=flow))

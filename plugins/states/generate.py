"""``response``'s ``generate``: the Model Orchestrator writes the reply, the state's template is the fallback.

The model service is one of the flow's integrations (so its base_url, secrets, retries and circuit
breaker are declared once, and the call runs under the turn's deadline like any other). It gets the seed's
``generate_response`` request as a JSON POST::

    {"intent": "order_pizza", "template": "<the state's template, rendered>", "text": "<the message>",
     "conversation_history": [...], "user_context": {...}, "model_preferences": {...}}

and answers ``{"text": "..."}``. Any failure — down, slow (``timeout_ms``), an open breaker, an answer
without a non-empty ``text`` — says the rendered template instead: the turn never fails because the model
service does. The call is recorded like every integration call (``integration_call`` event).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import IntegrationRequest, Reference, TurnView
from mcp_engine.plugins.nlu.http import conversation_fields


class Generate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    integration_id: str = Field(description="The flow's integration that reaches the Model Orchestrator")
    endpoint: str = Field("", description="Path of its generate endpoint under the integration's base_url")
    timeout_ms: int | None = Field(
        None, ge=1, le=60_000, description="Overrides the integration's: how long a reply may wait"
    )
    model_preferences: dict[str, Any] = Field(
        default_factory=dict, description="The tenant's model preferences, sent as they are"
    )

    def references(self) -> Iterator[Reference]:
        yield Reference("integration", self.integration_id, ("generate", "integration_id"))

    async def reply(self, turn: TurnView, template_text: str) -> str:
        """The generated reply, or ``template_text`` when the model service cannot give one."""
        integration = turn.flow.integrations[self.integration_id]
        policy = integration.retry_policy
        event = turn.event or {}
        body = {
            "intent": (turn.context.get("intent") or {}).get("name"),
            "template": template_text,
            "text": event.get("text", "") if event.get("type") == "message" else "",
            **conversation_fields(turn.context),
            "model_preferences": self.model_preferences,
        }
        request = IntegrationRequest(
            method="POST",
            endpoint=self.endpoint,
            params=body,
            timeout_ms=self.timeout_ms or integration.timeout_ms,
            max_retries=policy.max_retries,
            backoff_ms=policy.backoff_ms,
            retry_on=tuple(policy.retry_on),
            deadline=turn.deadline,
            integration_id=self.integration_id,
        )
        result = await turn.integration(self.integration_id).call(request)
        text = result.data.get("text") if result.ok and isinstance(result.data, dict) else None
        if result.ok and not (isinstance(text, str) and text.strip()):
            result = dataclasses.replace(result, ok=False, error="mapping", message="no 'text' in the answer")
        turn.record_integration(self.integration_id, result)
        return text if result.ok and isinstance(text, str) else template_text

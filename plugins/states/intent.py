"""``intent``: classifies the message among its candidate intents."""

from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_engine import Classification, Flow, Reference, StateType, hookimpl

DEFAULT_CONTEXT_TURNS = 3
MAX_CONTEXT_TURNS = 20


class IntentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent_patterns: list[str] = Field(
        default_factory=list, description="Candidate intent names; empty means all of the flow's intents"
    )
    confidence_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Overrides settings.confidence_threshold"
    )
    fallback_intent: str | None = Field(None, description="The intent taken below the threshold")
    context_aware: bool | Annotated[int, Field(ge=1, le=MAX_CONTEXT_TURNS)] = Field(
        False,
        description="The classifier also sees the conversation's earlier messages: true for the last "
        f"{DEFAULT_CONTEXT_TURNS}, or how many (1..{MAX_CONTEXT_TURNS}); a classifier that does not read "
        "context classifies the message alone",
    )

    @field_validator("context_aware", mode="before")
    @classmethod
    def _flag_or_count(cls, value: object) -> object:
        if isinstance(value, bool) or (isinstance(value, int) and 1 <= value <= MAX_CONTEXT_TURNS):
            return value
        raise ValueError(
            f"context_aware is true, false, or how many earlier messages (1..{MAX_CONTEXT_TURNS})"
        )

    @property
    def context_turns(self) -> int:
        if self.context_aware is True:
            return DEFAULT_CONTEXT_TURNS
        return int(self.context_aware)  # False is 0


class IntentState(StateType):
    name = "intent"
    Config = IntentConfig
    consumes_input = True
    description = "Waits for a message and classifies it."

    def classification(self, flow: Flow) -> Classification:
        config: IntentConfig = self.config
        return Classification(
            tuple(config.intent_patterns or flow.intents),
            config.confidence_threshold,
            config.fallback_intent,
            config.context_turns,
        )

    @classmethod
    def references(cls, config: IntentConfig) -> Iterator[Reference]:
        for i, intent in enumerate(config.intent_patterns):
            yield Reference("intent", intent, ("intent_patterns", i))
        if config.fallback_intent:
            yield Reference("intent", config.fallback_intent, ("fallback_intent",))


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [IntentState]

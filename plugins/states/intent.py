"""``intent``: classifies the message among its candidate intents."""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import Classification, Flow, Reference, StateType, hookimpl


class IntentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent_patterns: list[str] = Field(
        default_factory=list, description="Candidate intent names; empty means all of the flow's intents"
    )
    confidence_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Overrides settings.confidence_threshold"
    )
    fallback_intent: str | None = Field(None, description="The intent taken below the threshold")


class IntentState(StateType):
    name = "intent"
    Config = IntentConfig
    consumes_input = True
    description = "Waits for a message and classifies it."

    def classification(self, flow: Flow) -> Classification:
        config: IntentConfig = self.config
        return Classification(
            tuple(config.intent_patterns or flow.intents), config.confidence_threshold, config.fallback_intent
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

"""The built-in ``intent`` and ``wait`` state types written again by a third party, from the public
contract only (``from mcp_engine import ...``, nothing else of the engine), under the same names.

With the built-ins blocked, the turn tests run against these exactly as against the built-ins
(``tests/conftest.py``, the ``states`` fixture): the proof that the host asks a state everything it
needs through ``StateType`` and ``TurnView``, never by its type name or its configuration's fields.
"""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import Classification, Flow, Reference, StateType, hookimpl


class ClassifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent_patterns: list[str] = Field(default_factory=list)
    confidence_threshold: float | None = Field(None, ge=0.0, le=1.0)
    fallback_intent: str | None = None


class Classify(StateType):
    """Waits for a message and classifies it (statekit)."""

    name = "intent"
    Config = ClassifyConfig
    consumes_input = True

    def classification(self, flow: Flow) -> Classification:
        config: ClassifyConfig = self.config
        candidates = tuple(config.intent_patterns) if config.intent_patterns else tuple(flow.intents)
        return Classification(candidates, config.confidence_threshold, config.fallback_intent)

    @classmethod
    def references(cls, config: ClassifyConfig) -> Iterator[Reference]:
        for i, intent in enumerate(config.intent_patterns):
            yield Reference("intent", intent, ("intent_patterns", i))
        if config.fallback_intent is not None:
            yield Reference("intent", config.fallback_intent, ("fallback_intent",))


class PauseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_ms: int | None = Field(None, ge=1)


class Pause(StateType):
    """Waits for a message, or for a timeout (statekit)."""

    name = "wait"
    Config = PauseConfig
    consumes_input = True

    def timeout_ms(self) -> int | None:
        config: PauseConfig = self.config
        return config.timeout_ms


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [Classify, Pause]

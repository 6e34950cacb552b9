"""The built-in ``intent`` and ``wait`` state types written again by a third party, from the public
contract only (``from mcp_engine import ...``, nothing else of the engine), under the same names.

With the built-ins blocked, the turn tests run against these exactly as against the built-ins
(``tests/conftest.py``, the ``states`` fixture): the proof that the host asks a state everything it
needs through ``StateType`` and ``TurnView``, never by its type name or its configuration's fields.

``ask`` is a third party's own state type with no built-in twin: it asks a question on entry and keeps
the answer in a variable, so the turn tests can check a state that prompts on entry (as slot_filling
does) for a first message delivered twice, and for how it asks again after a digression.
"""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import Classification, Flow, FlowAssets, Reference, StateType, TurnView, hookimpl


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


class AskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    variable: str


class Ask(StateType):
    """Asks ``question`` and keeps the next message in ``variables.<variable>`` (statekit)."""

    name = "ask"
    Config = AskConfig
    consumes_input = True

    @classmethod
    def references(cls, config: AskConfig) -> Iterator[Reference]:
        yield Reference("template", config.question, ("question",))

    def prepare(self, assets: FlowAssets) -> None:
        self.question = assets.template(self.config.question)

    async def enter(self, turn: TurnView) -> None:
        if turn.message_pending:  # the first message of a run comes before any question was asked
            turn.state_data["unasked"] = True
        else:
            turn.emit(turn.render(self.question))

    async def receive(self, turn: TurnView) -> None:
        event = turn.event or {}
        if event.get("type") == "message" and not turn.state_data.pop("unasked", False):
            turn.context["variables"][self.config.variable] = event.get("text", "")

    async def respond(self, turn: TurnView) -> bool:
        return await self.resume(turn)

    async def resume(self, turn: TurnView) -> bool:
        turn.emit(turn.render(self.question))
        return True


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [Classify, Pause, Ask]

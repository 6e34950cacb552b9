"""``trigger_flow``: runs another flow of the tenant as a sub-flow, then returns."""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import FLOW_ID_PATTERN, Action, Reference, TurnView, hookimpl


class TriggerFlowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow_id: str = Field(pattern=FLOW_ID_PATTERN)
    return_state: str = Field(description="Entered when the sub-flow reaches an end state")


class TriggerFlow(Action):
    name = "trigger_flow"
    Config = TriggerFlowConfig

    @classmethod
    def references(cls, config: TriggerFlowConfig) -> Iterator[Reference]:
        yield Reference("flow", config.flow_id, ("flow_id",))
        yield Reference("state", config.return_state, ("return_state",))

    async def run(self, turn: TurnView) -> None:
        turn.trigger_flow(self.config.flow_id, self.config.return_state)


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [TriggerFlow]

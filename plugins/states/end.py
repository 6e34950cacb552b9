"""``end``: emits its optional template and completes the run."""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import FlowAssets, Reference, StateType, TurnView, hookimpl
from mcp_engine.plugins.states.response import ChannelTemplates, template_references


class EndConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_templates: dict[str, str] = Field(default_factory=dict)
    response_type: str = "text"


class EndState(StateType):
    name = "end"
    Config = EndConfig
    ends_run = True
    description = "Completes the run; the next message starts again at the initial state."

    @classmethod
    def references(cls, config: EndConfig) -> Iterator[Reference]:
        return template_references(config.response_templates)

    def prepare(self, assets: FlowAssets) -> None:
        self.templates = ChannelTemplates(self.config.response_templates, assets)

    async def enter(self, turn: TurnView) -> None:
        self.templates.emit(turn, response_type=self.config.response_type)


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [EndState]

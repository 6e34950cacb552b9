"""``send_message``: emits a rendered template."""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from mcp_engine import Action, FlowAssets, Reference, TurnView, hookimpl


class SendMessageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class SendMessage(Action):
    name = "send_message"
    Config = SendMessageConfig

    @classmethod
    def references(cls, config: SendMessageConfig) -> Iterator[Reference]:
        yield Reference("template", config.text, ("text",))

    def prepare(self, assets: FlowAssets) -> None:
        self.template = assets.template(self.config.text)

    async def run(self, turn: TurnView) -> None:
        turn.emit(turn.render(self.template))


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [SendMessage]

"""``call_integration``: calls a declared integration from an action list."""

from collections.abc import Iterator

from mcp_engine import Action, FlowAssets, Reference, TurnView, hookimpl
from mcp_engine.plugins.integrations.calls import PreparedCall
from mcp_engine.plugins.states.integration import IntegrationCall


class CallIntegration(Action):
    name = "call_integration"
    Config = IntegrationCall

    @classmethod
    def references(cls, config: IntegrationCall) -> Iterator[Reference]:
        yield from IntegrationCall.call_references(config)

    def prepare(self, assets: FlowAssets) -> None:
        self.call = PreparedCall(self.config, assets)

    async def run(self, turn: TurnView) -> None:
        await self.call.run(turn)


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [CallIntegration]

"""A third-party plugin as its authors would write it: public imports only, one state type and one action."""

from pydantic import BaseModel, ConfigDict

from mcp_engine import Action, StateType, TurnView, hookimpl


class CarouselConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[str]


class CarouselState(StateType):
    """Shows a carousel of items."""

    name = "carousel"
    Config = CarouselConfig


class SmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str


class SendSms(Action):
    name = "send_sms"
    description = "Sends a text message."
    Config = SmsConfig

    async def run(self, turn: TurnView) -> None:
        """Nothing to send in tests."""


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [CarouselState]


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [SendSms]

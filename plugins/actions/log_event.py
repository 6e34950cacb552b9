"""``log_event``: records a custom analytics event."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import Action, TurnView, hookimpl


class LogEventConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)


class LogEvent(Action):
    name = "log_event"
    Config = LogEventConfig

    async def run(self, turn: TurnView) -> None:
        turn.record("custom", {"event": self.config.event, "data": self.config.data})


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [LogEvent]

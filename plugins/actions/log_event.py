"""``log_event``: records a custom analytics event."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import Action, hookimpl


class LogEventConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)


class LogEvent(Action):
    name = "log_event"
    Config = LogEventConfig


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [LogEvent]

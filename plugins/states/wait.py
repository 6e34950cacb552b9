"""``wait``: waits for a message, or for a server-side timeout after ``timeout_ms``."""

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import StateType, hookimpl


class WaitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_ms: int | None = Field(None, ge=1, le=30 * 24 * 3600 * 1000)


class WaitState(StateType):
    name = "wait"
    Config = WaitConfig
    consumes_input = True
    description = "Waits for the next message or a timeout event."

    def timeout_ms(self) -> int | None:
        timeout: int | None = self.config.timeout_ms
        return timeout


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [WaitState]

"""A plugin that reuses the name of the built-in ``response`` state type."""

from mcp_engine import StateType, hookimpl


class MyResponse(StateType):
    name = "response"


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [MyResponse]

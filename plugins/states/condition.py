"""``condition``: does nothing itself; only its transitions are evaluated."""

from mcp_engine import StateType, hookimpl


class ConditionState(StateType):
    name = "condition"
    description = "Branches on its transitions' conditions."


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [ConditionState]

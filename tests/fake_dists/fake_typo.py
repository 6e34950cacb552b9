"""A plugin whose hook name is misspelled (``state_type`` for ``state_types``)."""

from mcp_engine import StateType, hookimpl


@hookimpl
def mcp_engine_state_type() -> list[type[StateType]]:
    return []

"""Every hook of the engine, documented. One hook per plugin kind; each yields classes.

The host calls these hooks once at start and builds a registry from the answers
(``mcp_engine.plugin_manager``); the per-turn path never calls ``pm.hook``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mcp_engine.kinds import Action, ConditionType, IntegrationClient, RuleKind, StateType

hookspec = pluggy.HookspecMarker("mcp_engine")
hookimpl = pluggy.HookimplMarker("mcp_engine")


@hookspec
def mcp_engine_state_types() -> list[type[StateType]]:  # type: ignore[empty-body]
    """Return the state types this plugin provides.

    Called once when the engine starts. Each class subclasses ``mcp_engine.StateType``, sets a unique
    ``name`` and a pydantic ``Config`` for its ``config`` block. Example::

        @hookimpl
        def mcp_engine_state_types():
            return [CarouselState]
    """


@hookspec
def mcp_engine_actions() -> list[type[Action]]:  # type: ignore[empty-body]
    """Return the action types this plugin provides.

    Called once at start. Each class subclasses ``mcp_engine.Action``; its ``Config`` validates the
    action's params (the keys next to ``type``). Example: ``return [SendSms]``.
    """


@hookspec
def mcp_engine_condition_types() -> list[type[ConditionType]]:  # type: ignore[empty-body]
    """Return the transition condition types this plugin provides.

    Called once at start. Each class subclasses ``mcp_engine.ConditionType`` and says its ``kind``
    (``input`` or ``automatic``) and whether it takes a ``condition_value``.
    Example: ``return [SentimentBelow]``.
    """


@hookspec
def mcp_engine_integration_clients() -> list[type[IntegrationClient]]:  # type: ignore[empty-body]
    """Return the integration clients (values of an integration's ``type``) this plugin provides.

    Called once at start. Example: ``return [GraphQLClient]``.
    """


@hookspec
def mcp_engine_rule_kinds() -> list[type[RuleKind]]:  # type: ignore[empty-body]
    """Return slot validation rule kinds (the part before ``:`` in ``int:1..10``).

    Called once at start. ``parse(argument)`` checks the rule string when a flow is validated.
    Example: ``return [IbanRule]``.
    """

"""Every hook of the engine, documented. One hook per plugin kind; each returns classes.

The host calls these hooks once at start and builds a registry from the answers
(``mcp_engine.registry``); the per-turn path never calls ``pm.hook``. Built-in plugins use
these same hooks, so a third-party plugin can do anything a built-in does. A plugin imports only
from the package root::

    from mcp_engine import StateType, hookimpl

Each returned class subclasses its kind's base class of ``mcp_engine.contract`` and sets a ``name``
unique within its kind (a third-party plugin reusing a name is skipped, naming both distributions) and a
pydantic ``Config`` (``extra="forbid"``); the flow JSON Schema is generated from what the hooks return,
so a plugin's configuration is validated like a built-in's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from mcp_engine.contract import (
        Action,
        ConditionType,
        EventSink,
        IntegrationClient,
        IntentClassifier,
        RuleKind,
        StateType,
    )

hookspec = pluggy.HookspecMarker("mcp_engine")
hookimpl = pluggy.HookimplMarker("mcp_engine")


@hookspec
def mcp_engine_state_types() -> list[type[StateType]]:  # type: ignore[empty-body]
    """Return the state types this plugin provides (values of a state's ``type``).

    Called once when the engine starts, with no arguments. Each class subclasses
    ``mcp_engine.StateType``, sets a unique ``name`` and a pydantic ``Config`` for its ``config`` block.
    Example::

        @hookimpl
        def mcp_engine_state_types():
            return [CarouselState]
    """


@hookspec
def mcp_engine_actions() -> list[type[Action]]:  # type: ignore[empty-body]
    """Return the action types this plugin provides (values of an action's ``type``).

    Called once at start, with no arguments. Each class subclasses ``mcp_engine.Action``; its
    ``Config`` validates the action's params (the keys next to ``type``). Example::

        @hookimpl
        def mcp_engine_actions():
            return [SendSms]
    """


@hookspec
def mcp_engine_condition_types() -> list[type[ConditionType]]:  # type: ignore[empty-body]
    """Return the transition condition types this plugin provides (values of ``condition``).

    Called once at start, with no arguments. Each class subclasses ``mcp_engine.ConditionType`` and
    says its ``kind`` (``input`` or ``automatic``) and whether it takes a ``condition_value``.
    Example::

        @hookimpl
        def mcp_engine_condition_types():
            return [SentimentBelow]
    """


@hookspec
def mcp_engine_integration_clients() -> list[type[IntegrationClient]]:  # type: ignore[empty-body]
    """Return the integration clients (values of an integration's ``type``) this plugin provides.

    Called once at start, with no arguments. Each class subclasses ``mcp_engine.IntegrationClient``;
    one instance is made per declared integration of a compiled flow. Example::

        @hookimpl
        def mcp_engine_integration_clients():
            return [GraphQLClient]
    """


@hookspec
def mcp_engine_intent_classifiers() -> list[type[IntentClassifier]]:  # type: ignore[empty-body]
    """Return the intent classifiers this plugin provides.

    Called once at start, with no arguments. Each class subclasses ``mcp_engine.IntentClassifier``;
    one instance is made per compiled flow from its intents, and ``classify`` ranks a message among
    candidate intents (the built-ins are the pattern/example classifier and an HTTP model
    orchestrator). Example::

        @hookimpl
        def mcp_engine_intent_classifiers():
            return [SpacyClassifier]
    """


@hookspec
def mcp_engine_rule_kinds() -> list[type[RuleKind]]:  # type: ignore[empty-body]
    """Return slot validation rules/extractors (the part before ``:`` in ``int:1..10``).

    Called once at start, with no arguments. Each class subclasses ``mcp_engine.RuleKind``:
    ``parse(argument)`` checks the rule string when a flow is validated and ``extract`` finds the
    values in a message. Example::

        @hookimpl
        def mcp_engine_rule_kinds():
            return [IbanRule]
    """


@hookspec
def mcp_engine_event_sinks() -> list[type[EventSink]]:  # type: ignore[empty-body]
    """Return the event sinks this plugin provides (where the events of every turn are published).

    Called once at start, with no arguments. Each class subclasses ``mcp_engine.EventSink``;
    ``publish`` receives batches of turn events and must never block or fail a turn. Example::

        @hookimpl
        def mcp_engine_event_sinks():
            return [KafkaSink]
    """

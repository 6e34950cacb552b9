"""The plugin manager and the registry of plugin kinds, built once at start.

Built-ins load from an explicit list (so they work with third-party autoload off); the registry
maps kind -> name -> class with the providing distribution, and a name provided twice stops the
start naming both providers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy

from mcp_engine import hookspecs
from mcp_engine.errors import PluginClash
from mcp_engine.kinds import Action, ConditionType, IntegrationClient, Plugin, RuleKind, StateType

BUILTIN_PLUGINS: tuple[str, ...] = (
    "mcp_engine.plugins.states.response",
    "mcp_engine.plugins.states.intent",
    "mcp_engine.plugins.states.slot_filling",
    "mcp_engine.plugins.states.integration",
    "mcp_engine.plugins.states.condition",
    "mcp_engine.plugins.states.wait",
    "mcp_engine.plugins.states.end",
    "mcp_engine.plugins.conditions.builtin",
    "mcp_engine.plugins.actions.send_message",
    "mcp_engine.plugins.actions.variables",
    "mcp_engine.plugins.actions.call_integration",
    "mcp_engine.plugins.actions.log_event",
    "mcp_engine.plugins.actions.trigger_flow",
    "mcp_engine.plugins.integrations.rest",
    "mcp_engine.plugins.extractors.rules",
)
BUILTIN_PROVIDER = "mcp-engine (built-in)"

P = TypeVar("P", bound=Plugin)


@dataclass
class Kind(Generic[P]):
    """The registered plugins of one kind: name -> class, and name -> providing distribution."""

    label: str
    classes: dict[str, type[P]] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)

    def add(self, cls: type[P], provider: str) -> None:
        if cls.name in self.classes:
            raise PluginClash(
                f"{self.label} '{cls.name}' is provided twice: "
                f"by {self.providers[cls.name]} and by {provider}",
                {"kind": self.label, "name": cls.name, "providers": [self.providers[cls.name], provider]},
            )
        self.classes[cls.name] = cls
        self.providers[cls.name] = provider

    def get(self, name: str) -> type[P] | None:
        return self.classes.get(name)

    def names(self) -> list[str]:
        return sorted(self.classes)


@dataclass
class Registry:
    state_types: Kind[StateType] = field(default_factory=lambda: Kind("state type"))
    actions: Kind[Action] = field(default_factory=lambda: Kind("action"))
    conditions: Kind[ConditionType] = field(default_factory=lambda: Kind("condition"))
    integration_clients: Kind[IntegrationClient] = field(default_factory=lambda: Kind("integration client"))
    rule_kinds: Kind[RuleKind] = field(default_factory=lambda: Kind("rule kind"))

    HOOKS = (
        ("state_types", "mcp_engine_state_types"),
        ("actions", "mcp_engine_actions"),
        ("conditions", "mcp_engine_condition_types"),
        ("integration_clients", "mcp_engine_integration_clients"),
        ("rule_kinds", "mcp_engine_rule_kinds"),
    )

    @classmethod
    def from_plugin_manager(
        cls, pm: pluggy.PluginManager, providers: dict[int, str] | None = None
    ) -> Registry:
        """Call every kind hook once and register what each plugin returns, with its provider."""
        registry = cls()
        providers = providers or {}
        for attr, hook_name in cls.HOOKS:
            kind: Kind[Any] = getattr(registry, attr)
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                provider = providers.get(id(impl.plugin), BUILTIN_PROVIDER)
                for plugin_cls in impl.function() or ():
                    kind.add(plugin_cls, provider)
        return registry


def create_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the hook specs and the built-in plugins registered."""
    pm = pluggy.PluginManager("mcp_engine")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    pm.check_pending()
    return pm


def default_registry() -> Registry:
    """The registry of the built-in plugins (third-party discovery comes with the runtime's host)."""
    return Registry.from_plugin_manager(create_plugin_manager())

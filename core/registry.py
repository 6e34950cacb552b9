"""The registry of plugin kinds: name -> class, with the distribution that provides it.

Filled once at start from the kind hooks of the loaded plugins (``mcp_engine.plugin_manager``); the hot
path reads only this, never ``pm.hook``. A third-party plugin that answers a hook with something that is
not a class of the kind, or with a name already taken, is skipped as a whole (the first provider keeps
the name; a built-in always does), so one bad plugin never half-registers nor stops the start. The same
provenance drives ``mcp-engine plugins``, ``GET /v2/plugins`` and per-tenant enablement: a tenant's view
is the registry filtered to the plugins it enabled, remembering what it hides so a flow naming a hidden
kind fails validation saying which plugin the tenant has not enabled.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from mcp_engine.contract import (
    Action,
    ConditionType,
    EventSink,
    IntegrationClient,
    IntentClassifier,
    Plugin,
    RuleKind,
    StateType,
)
from mcp_engine.errors import PluginClash
from mcp_engine.plugin_manager import (
    PluginHost,
    Provider,
    Skipped,
    create_plugin_manager,
)

P = TypeVar("P", bound=Plugin)


@dataclass(frozen=True)
class PluginUse:
    """Something a flow uses from a plugin (``what``: "state type 'carousel'", "plugin 'carousel'"), with
    the provider and the JSON pointer of where the flow names it."""

    what: str
    provider: Provider
    pointer: str


@dataclass
class Kind(Generic[P]):
    """The registered plugins of one kind: name -> class, and name -> providing distribution.

    ``hidden`` holds, in a tenant's view, the names of this kind the tenant's enabled plugins leave out.
    """

    label: str
    base: type[P]
    classes: dict[str, type[P]] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    hidden: dict[str, Provider] = field(default_factory=dict)

    def add(self, cls: type[P], provider: Provider | str) -> None:
        """Register ``cls`` under its name; a plain string names an in-process provider (tests)."""
        if isinstance(provider, str):
            provider = Provider(provider, "", provider)
        if (reason := self.refuses(cls, provider)) is not None:
            raise PluginClash(reason, {"kind": self.label, "name": getattr(cls, "name", None)})
        self.classes[cls.name] = cls
        self.providers[cls.name] = provider

    def refuses(self, cls: Any, provider: Provider) -> str | None:
        """Why ``cls`` cannot be registered from ``provider`` (not a class of this kind, no name, a name
        already provided), else None."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            return f"its {self.label} hook returned {cls!r}, which is not a {self.base.__name__} subclass"
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            return f"its {self.label} {cls.__name__} has no name"
        if (first := self.providers.get(name)) is not None:
            return f"{self.label} '{name}' is provided twice: by {first} and by {provider}"
        return None

    def get(self, name: str) -> type[P] | None:
        return self.classes.get(name)

    def names(self) -> list[str]:
        return sorted(self.classes)

    def filtered(self, keep: Callable[[Provider], bool]) -> Kind[P]:
        """A copy holding only the entries whose provider ``keep`` accepts; the others are ``hidden``."""
        names = [name for name, provider in self.providers.items() if keep(provider)]
        hidden = {name: p for name, p in self.providers.items() if name not in names}
        return Kind(
            self.label,
            self.base,
            {n: self.classes[n] for n in names},
            {n: self.providers[n] for n in names},
            hidden,
        )


@dataclass
class Registry:
    """Every plugin kind, filled once at start from the kind hooks; the hot path reads only this.

    ``skipped`` lists the installed third-party plugins that are not in use, and why. In a tenant's view
    (``tenant_view``) ``tenant_id`` names the tenant and each kind's ``hidden`` what it has not enabled.
    """

    state_types: Kind[StateType] = field(default_factory=lambda: Kind("state type", StateType))
    actions: Kind[Action] = field(default_factory=lambda: Kind("action", Action))
    conditions: Kind[ConditionType] = field(default_factory=lambda: Kind("condition", ConditionType))
    integration_clients: Kind[IntegrationClient] = field(
        default_factory=lambda: Kind("integration client", IntegrationClient)
    )
    classifiers: Kind[IntentClassifier] = field(
        default_factory=lambda: Kind("intent classifier", IntentClassifier)
    )
    rule_kinds: Kind[RuleKind] = field(default_factory=lambda: Kind("rule kind", RuleKind))
    event_sinks: Kind[EventSink] = field(default_factory=lambda: Kind("event sink", EventSink))
    skipped: list[Skipped] = field(default_factory=list)
    tenant_id: str | None = None
    enabled: tuple[str, ...] | None = None

    HOOKS = (
        ("state_types", "mcp_engine_state_types"),
        ("actions", "mcp_engine_actions"),
        ("conditions", "mcp_engine_condition_types"),
        ("integration_clients", "mcp_engine_integration_clients"),
        ("classifiers", "mcp_engine_intent_classifiers"),
        ("rule_kinds", "mcp_engine_rule_kinds"),
        ("event_sinks", "mcp_engine_event_sinks"),
    )

    @classmethod
    def from_plugin_manager(cls, pm: PluginHost) -> Registry:
        """Call every kind hook of each plugin once (in registration order, built-ins first) and register
        what it returns with its provider; a third-party plugin with any refused answer is skipped whole.

        Each implementation is called on its own (not through ``pm.hook``) so every class is attributed
        to the plugin that returned it.
        """
        registry = cls()
        offers: dict[str, list[tuple[Kind[Any], Any]]] = {
            name: [] for name, plugin in pm.list_name_plugin() if plugin is not None
        }
        failures: dict[str, str] = {}
        for attr, hook_name in cls.HOOKS:
            kind: Kind[Any] = getattr(registry, attr)
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                try:
                    offered = list(impl.function() or ())
                except Exception as exc:  # a third-party hook that raises: the plugin is skipped
                    if pm.provider_of(impl.plugin_name).builtin:
                        raise
                    failures.setdefault(impl.plugin_name, f"{hook_name}() raised {exc!r}")
                    continue
                offers.setdefault(impl.plugin_name, []).extend((kind, offer) for offer in offered)
        for name, offered in offers.items():
            provider = pm.provider_of(name)
            reason = failures.get(name) or registry._refusal(offered, provider)
            if reason is None:
                for kind, plugin_cls in offered:
                    kind.add(plugin_cls, provider)
            elif provider.builtin:
                raise PluginClash(reason, {"plugin": name})
            else:
                pm.skip(provider, reason)
        registry.skipped = list(pm.skipped)
        return registry

    @staticmethod
    def _refusal(offered: list[tuple[Kind[Any], Any]], provider: Provider) -> str | None:
        """Why one plugin's classes cannot all be registered (checked before any is), else None."""
        seen: set[tuple[str, str]] = set()
        for kind, plugin_cls in offered:
            if (reason := kind.refuses(plugin_cls, provider)) is not None:
                return reason
            if (kind.label, plugin_cls.name) in seen:
                return f"it provides {kind.label} '{plugin_cls.name}' twice"
            seen.add((kind.label, plugin_cls.name))
        return None

    def kinds(self) -> Iterator[Kind[Any]]:
        for attr, _ in self.HOOKS:
            yield getattr(self, attr)

    def describe(self) -> list[dict[str, str]]:
        """One record per registered class, for ``mcp-engine plugins`` and ``GET /v2/plugins``."""
        return [
            {
                "kind": kind.label,
                "name": name,
                "provider": provider.distribution,
                "version": provider.version,
                "plugin": provider.plugin,
                "description": _description(kind.classes[name]),
            }
            for kind in self.kinds()
            for name in kind.names()
            for provider in (kind.providers[name],)
        ]

    def providers(self) -> list[Provider]:
        """Every distinct provider with something registered, built-ins first."""
        found = {p: None for kind in self.kinds() for p in [*kind.providers.values(), *kind.hidden.values()]}
        return sorted(found, key=lambda p: (not p.builtin, p.distribution, p.plugin))

    def tenant_view(self, enabled: Collection[str] | None, tenant_id: str | None = None) -> Registry:
        """The registry as a tenant sees it, so a flow naming a disabled plugin fails validation.

        ``enabled`` holds plugin (entry-point) names or distribution names; None enables everything.
        Built-ins are always enabled: flows rely on them and they cannot be uninstalled.
        """
        if enabled is None:
            return self
        chosen = tuple(enabled)
        views = {attr: getattr(self, attr).filtered(lambda p: enables(chosen, p)) for attr, _ in self.HOOKS}
        return Registry(**views, skipped=self.skipped, tenant_id=tenant_id, enabled=chosen)


def enables(enabled: Collection[str] | None, provider: Provider) -> bool:
    """Whether a tenant's ``enabled_plugins`` (None: all) let it use what ``provider`` provides."""
    if enabled is None or provider.builtin:
        return True
    return any(named(name, provider) for name in enabled)


def named(name: str, provider: Provider) -> bool:
    """Whether ``name`` is ``provider``'s plugin (entry-point) name or the name of its distribution."""
    return name == provider.plugin or normalized(name) == normalized(provider.distribution)


def normalized(distribution: str) -> str:
    """A distribution name as PEP 503 compares them (``My_Plugin`` is ``my-plugin``)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def default_registry() -> Registry:
    """The registry of the built-ins and the third-party plugins ``MCP_ENGINE_LOAD_PLUGINS`` enables."""
    return Registry.from_plugin_manager(create_plugin_manager())


def _description(cls: type[Plugin]) -> str:
    return cls.description or (cls.__doc__ or "").strip().split("\n", 1)[0]

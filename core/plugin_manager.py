"""The plugin host: stevedore decides which plugin code loads, pluggy how it is called.

Built-ins load from an explicit list, so they work with third-party loading off. Third-party plugins
are entry points in group ``mcp_engine``, loaded by stevedore's named manager from an allow-list
(``MCP_ENGINE_LOAD_PLUGINS``): a plugin that is not enabled is never imported, and one that fails to
import is logged with its distribution and skipped, never aborting the start. The kind hooks are then
called once into a ``Registry`` keyed by name that remembers each entry's distribution, so a name
provided twice stops the start naming both providers, and the same provenance drives
``mcp-engine plugins``, ``GET /v2/plugins`` and per-tenant enablement.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

import pluggy
from stevedore import ExtensionManager, NamedExtensionManager

from mcp_engine import hookspecs
from mcp_engine.errors import PluginClash
from mcp_engine.kinds import (
    Action,
    ConditionType,
    EventSink,
    IntegrationClient,
    IntentClassifier,
    Plugin,
    RuleKind,
    StateType,
)

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
    "mcp_engine.plugins.nlu.builtin",
    "mcp_engine.plugins.nlu.http",
    "mcp_engine.plugins.sinks.store",
    "mcp_engine.plugins.sinks.redis_stream",
)
ENGINE_DISTRIBUTION = "mcp-engine"
ENTRY_POINT_GROUP = "mcp_engine"
LOAD_PLUGINS_ENV = "MCP_ENGINE_LOAD_PLUGINS"
HOOK_NAMES = tuple(sorted(name for name in vars(hookspecs) if name.startswith("mcp_engine_")))

log = logging.getLogger(__name__)
P = TypeVar("P", bound=Plugin)


@dataclass(frozen=True)
class Provider:
    """Where a registered class comes from: a distribution, its version, and the plugin inside it.

    ``plugin`` is the name the plugin is registered under in pluggy: the entry-point name of a
    third-party plugin (the name ``MCP_ENGINE_LOAD_PLUGINS`` and tenants enable), the module of a built-in.
    """

    distribution: str
    version: str
    plugin: str

    @property
    def builtin(self) -> bool:
        return self.distribution == ENGINE_DISTRIBUTION

    def __str__(self) -> str:
        where = " ".join(part for part in (self.distribution, self.version) if part)
        return where if self.plugin == self.distribution else f"{where} (plugin '{self.plugin}')"


@dataclass
class Kind(Generic[P]):
    """The registered plugins of one kind: name -> class, and name -> providing distribution."""

    label: str
    classes: dict[str, type[P]] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)

    def add(self, cls: type[P], provider: Provider | str) -> None:
        """Register ``cls`` under its name; a plain string names an in-process provider (tests)."""
        if isinstance(provider, str):
            provider = Provider(provider, "", provider)
        if (first := self.providers.get(cls.name)) is not None:
            raise PluginClash(
                f"{self.label} '{cls.name}' is provided twice: by {first} and by {provider}",
                {"kind": self.label, "name": cls.name, "providers": [asdict(first), asdict(provider)]},
            )
        self.classes[cls.name] = cls
        self.providers[cls.name] = provider

    def get(self, name: str) -> type[P] | None:
        return self.classes.get(name)

    def names(self) -> list[str]:
        return sorted(self.classes)

    def filtered(self, keep: Callable[[Provider], bool]) -> Kind[P]:
        """A copy holding only the entries whose provider ``keep`` accepts."""
        names = [name for name, provider in self.providers.items() if keep(provider)]
        return Kind(self.label, {n: self.classes[n] for n in names}, {n: self.providers[n] for n in names})


@dataclass
class Registry:
    """Every plugin kind, filled once at start from the kind hooks; the hot path reads only this."""

    state_types: Kind[StateType] = field(default_factory=lambda: Kind("state type"))
    actions: Kind[Action] = field(default_factory=lambda: Kind("action"))
    conditions: Kind[ConditionType] = field(default_factory=lambda: Kind("condition"))
    integration_clients: Kind[IntegrationClient] = field(default_factory=lambda: Kind("integration client"))
    classifiers: Kind[IntentClassifier] = field(default_factory=lambda: Kind("intent classifier"))
    rule_kinds: Kind[RuleKind] = field(default_factory=lambda: Kind("rule kind"))
    event_sinks: Kind[EventSink] = field(default_factory=lambda: Kind("event sink"))

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
        """Call every kind hook once and register what each plugin returns, with its provider.

        Each implementation is called on its own (not through ``pm.hook``) so every class is
        attributed to the plugin that returned it.
        """
        registry = cls()
        for attr, hook_name in cls.HOOKS:
            kind: Kind[Any] = getattr(registry, attr)
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                provider = pm.provider_of(impl.plugin_name)
                for plugin_cls in impl.function() or ():
                    kind.add(plugin_cls, provider)
        return registry

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

    def tenant_view(self, enabled: Collection[str] | None) -> Registry:
        """The registry as a tenant sees it, so a flow naming a disabled plugin fails validation.

        ``enabled`` holds plugin (entry-point) names or distribution names; None enables everything.
        Built-ins are always enabled: flows rely on them and they cannot be uninstalled.
        """
        if enabled is None:
            return self
        wanted = {_normalized(name) for name in enabled}

        def keep(provider: Provider) -> bool:
            return (
                provider.builtin or provider.plugin in enabled or _normalized(provider.distribution) in wanted
            )

        return Registry(**{attr: getattr(self, attr).filtered(keep) for attr, _ in self.HOOKS})


class PluginHost(pluggy.PluginManager):
    """pluggy's manager for the engine's hooks, remembering which distribution gave each plugin."""

    def __init__(self) -> None:
        super().__init__("mcp_engine")
        self.add_hookspecs(hookspecs)
        self.providers: dict[str, Provider] = {}

    def register_from(self, plugin: object, name: str, provider: Provider) -> None:
        """Register ``plugin`` under ``name``; two distributions using one name stop the start."""
        if (first := self.providers.get(name)) is not None:
            raise PluginClash(
                f"plugin '{name}' is provided twice: by {first} and by {provider}",
                {"kind": "plugin", "name": name, "providers": [asdict(first), asdict(provider)]},
            )
        self.register(plugin, name=name)
        self.providers[name] = provider

    def provider_of(self, name: str) -> Provider:
        """The provider of a registered plugin; one registered directly (``pm.register``) is its own."""
        return self.providers.get(name) or Provider(name, "", name)


def enabled_entry_points(allow: Sequence[str] | None = None) -> list[str] | None:
    """The entry-point names to load, or None for every installed one.

    ``allow`` wins when given; otherwise ``MCP_ENGINE_LOAD_PLUGINS`` holds comma-separated entry-point
    names. Unset loads every installed plugin; set but empty loads none (built-ins only), like llm's
    ``LLM_LOAD_PLUGINS``, so an operator can rule out third-party code without uninstalling it.
    """
    if allow is None:
        value = os.environ.get(LOAD_PLUGINS_ENV)
        if value is None:
            return None
        allow = value.split(",")
    return [name.strip() for name in allow if name.strip()]


def create_plugin_manager(load_entrypoints: bool = True, allow: Sequence[str] | None = None) -> PluginHost:
    """A plugin manager with the hook specs, the built-ins and the enabled third-party plugins.

    ``load_entrypoints=False`` loads the built-ins only; ``allow`` overrides ``MCP_ENGINE_LOAD_PLUGINS``
    (see ``enabled_entry_points``). Raises ``PluginClash`` when two distributions use one plugin name
    and ``pluggy.PluginValidationError`` when a plugin implements a hook that does not exist.
    """
    pm = PluginHost()
    version = importlib.metadata.version(ENGINE_DISTRIBUTION)
    for module in BUILTIN_PLUGINS:
        pm.register_from(
            importlib.import_module(module), module, Provider(ENGINE_DISTRIBUTION, version, module)
        )
    if load_entrypoints:
        _load_entry_points(pm, enabled_entry_points(allow))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        provider = pm.provider_of(pm.get_name(exc.plugin) or repr(exc.plugin))
        raise pluggy.PluginValidationError(
            exc.plugin, f"{provider}: {exc}; the engine's hooks are {', '.join(HOOK_NAMES)}"
        ) from exc
    return pm


def default_registry() -> Registry:
    """The registry of the built-ins and the third-party plugins ``MCP_ENGINE_LOAD_PLUGINS`` enables."""
    return Registry.from_plugin_manager(create_plugin_manager())


class _EntryPoints(NamedExtensionManager[Any]):
    """stevedore's named manager over entry points read from ``importlib.metadata`` on each start.

    stevedore caches a group's entry points for the whole process (and on disk) as bare
    ``EntryPoint`` objects without ``.dist``; reading them fresh keeps each plugin's distribution for
    provenance and sees distributions put on ``sys.path`` after a first start.
    """

    def __init__(self, installed: importlib.metadata.EntryPoints, names: Sequence[str]) -> None:
        self._installed = installed
        super().__init__(
            ENTRY_POINT_GROUP,
            names=names,
            on_load_failure_callback=_skip_broken,
            on_missing_entrypoints_callback=None,
            propagate_map_exceptions=False,
        )

    def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return list(self._installed)


def _load_entry_points(pm: PluginHost, names: list[str] | None) -> None:
    installed = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    if names is None:
        names = list(installed.names)
    elif missing := sorted(set(names) - set(installed.names)):
        log.warning("%s names plugins that are not installed: %s", LOAD_PLUGINS_ENV, ", ".join(missing))
    for extension in _EntryPoints(installed, names):
        pm.register_from(extension.plugin, extension.name, _provider(extension.entry_point))


def _skip_broken(
    _manager: ExtensionManager[Any], entry_point: importlib.metadata.EntryPoint, exc: BaseException
) -> None:
    log.error(
        "plugin '%s' from %s failed to load and is skipped: %s",
        entry_point.name,
        _provider(entry_point),
        exc,
        exc_info=exc,
    )


def _provider(entry_point: importlib.metadata.EntryPoint) -> Provider:
    dist = entry_point.dist
    if dist is None:  # never for entry points read from importlib.metadata; typed as optional
        return Provider("unknown distribution", "", entry_point.name)
    return Provider(dist.name, dist.version, entry_point.name)


def _normalized(distribution: str) -> str:
    """A distribution name as PEP 503 compares them (``My_Plugin`` is ``my-plugin``)."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _description(cls: type[Plugin]) -> str:
    return cls.description or (cls.__doc__ or "").strip().split("\n", 1)[0]

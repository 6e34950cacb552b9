"""Loading plugins: stevedore decides which plugin code loads, pluggy how it is called.

Built-ins load from an explicit list, so they work with third-party loading off. Third-party plugins
are entry points in group ``mcp_engine``, loaded by stevedore's named manager from an allow-list
(``MCP_ENGINE_LOAD_PLUGINS``): a plugin that is not enabled is never imported. A third-party plugin that
fails to import, implements a hook that does not exist or reuses another's name is logged with its
distribution and skipped, never aborting the start; ``PluginHost.skipped`` keeps why, for
``mcp-engine plugins`` and ``GET /v2/plugins``. What the plugins provide is read from here once, into the
``mcp_engine.registry.Registry``; this module only loads.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pluggy
from stevedore import ExtensionManager, NamedExtensionManager

from mcp_engine import hookspecs
from mcp_engine.errors import PluginClash

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
    "mcp_engine.plugins.integrations.adaptor",
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


@dataclass(frozen=True)
class Skipped:
    """A third-party plugin that is installed but not in use, and why."""

    provider: Provider
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self.provider), "reason": self.reason}


class PluginHost(pluggy.PluginManager):
    """pluggy's manager for the engine's hooks, remembering which distribution gave each plugin."""

    def __init__(self) -> None:
        super().__init__("mcp_engine")
        self.add_hookspecs(hookspecs)
        self.providers: dict[str, Provider] = {}
        self.skipped: list[Skipped] = []

    def register_from(self, plugin: object, name: str, provider: Provider) -> bool:
        """Register ``plugin`` under ``name``; False when it was skipped (see ``skip``).

        A built-in that cannot be registered is a bug of the engine and raises.
        """
        first = self.providers.get(name)
        try:
            if first is not None:
                raise PluginClash(
                    f"plugin '{name}' is provided twice: by {first} and by {provider}",
                    {"kind": "plugin", "name": name, "providers": [asdict(first), asdict(provider)]},
                )
            self.register(plugin, name=name)
        except (PluginClash, pluggy.PluginValidationError, ValueError) as exc:
            if provider.builtin:
                raise
            self.skip(provider, str(exc))
            return False
        self.providers[name] = provider
        return True

    def provider_of(self, name: str) -> Provider:
        """The provider of a registered plugin; one registered directly (``pm.register``) is its own."""
        return self.providers.get(name) or Provider(name, "", name)

    def skip(self, provider: Provider, reason: str, exc: BaseException | None = None) -> None:
        """Leave a third-party plugin out (unregistered if it was registered), logging and keeping why."""
        plugin = self.get_plugin(provider.plugin)
        if plugin is not None and self.providers.get(provider.plugin) == provider:
            self.unregister(plugin)
            del self.providers[provider.plugin]
        where = " ".join(part for part in (provider.distribution, provider.version) if part)
        log.error("plugin '%s' from %s is skipped: %s", provider.plugin, where, reason, exc_info=exc)
        self.skipped.append(Skipped(provider, reason))


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


def create_plugin_manager(
    load_entrypoints: bool = True, allow: Sequence[str] | None = None, blocked: Collection[str] = ()
) -> PluginHost:
    """A plugin manager with the hook specs, the built-ins and the enabled third-party plugins.

    ``load_entrypoints=False`` loads the built-ins only; ``allow`` overrides ``MCP_ENGINE_LOAD_PLUGINS``
    (see ``enabled_entry_points``); ``blocked`` names built-in modules or entry points never to register
    (pytest's ``-p no:NAME``), so a plugin may replace a built-in under the same names.
    """
    pm = PluginHost()
    for name in blocked:
        pm.set_blocked(name)
    version = importlib.metadata.version(ENGINE_DISTRIBUTION)
    for module in BUILTIN_PLUGINS:
        if not pm.is_blocked(module):
            pm.register_from(
                importlib.import_module(module), module, Provider(ENGINE_DISTRIBUTION, version, module)
            )
    if load_entrypoints:
        _load_entry_points(pm, enabled_entry_points(allow))
    _skip_unknown_hooks(pm)
    return pm


def _skip_unknown_hooks(pm: PluginHost) -> None:
    """pluggy's ``check_pending``: a plugin implementing a hook that does not exist (a misspelled one) is
    skipped, naming the engine's hooks; one check per plugin at most, so the loop is bounded."""
    for _ in range(len(pm.get_plugins()) + 1):
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            provider = pm.provider_of(pm.get_name(exc.plugin) or repr(exc.plugin))
            reason = f"{exc}; the engine's hooks are {', '.join(HOOK_NAMES)}"
            if provider.builtin:
                raise pluggy.PluginValidationError(exc.plugin, f"{provider}: {reason}") from exc
            pm.skip(provider, reason.replace(f" in plugin {exc.plugin!r}", ""))


class _EntryPoints(NamedExtensionManager[Any]):
    """stevedore's named manager over entry points read from ``importlib.metadata`` on each start.

    stevedore caches a group's entry points for the whole process (and on disk) as bare
    ``EntryPoint`` objects without ``.dist``; reading them fresh keeps each plugin's distribution for
    provenance and sees distributions put on ``sys.path`` after a first start.
    """

    def __init__(self, pm: PluginHost, installed: importlib.metadata.EntryPoints, names: Sequence[str]):
        self._installed = installed

        def broken(
            _manager: ExtensionManager[Any], entry_point: importlib.metadata.EntryPoint, exc: BaseException
        ) -> None:
            pm.skip(_provider(entry_point), f"failed to load: {exc}", exc)

        super().__init__(
            ENTRY_POINT_GROUP,
            names=names,
            on_load_failure_callback=broken,
            on_missing_entrypoints_callback=None,
            propagate_map_exceptions=False,
        )

    def list_entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return sorted(self._installed, key=lambda entry_point: entry_point.name)


def _load_entry_points(pm: PluginHost, names: list[str] | None) -> None:
    installed = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    if names is None:
        names = list(installed.names)
    elif missing := sorted(set(names) - set(installed.names)):
        log.warning("%s names plugins that are not installed: %s", LOAD_PLUGINS_ENV, ", ".join(missing))
    for extension in _EntryPoints(pm, installed, [n for n in names if not pm.is_blocked(n)]):
        pm.register_from(extension.plugin, extension.name, _provider(extension.entry_point))


def _provider(entry_point: importlib.metadata.EntryPoint) -> Provider:
    dist = entry_point.dist
    if dist is None:  # never for entry points read from importlib.metadata; typed as optional
        return Provider("unknown distribution", "", entry_point.name)
    return Provider(dist.name, dist.version, entry_point.name)

"""The plugin host with real installed distributions: loading, skipping, clashing, enabling, listing.

The third-party plugins are real ``*.dist-info`` directories (METADATA + entry_points.txt) with their
modules, copied from ``tests/fake_dists`` onto ``sys.path``, so discovery goes through
``importlib.metadata`` and stevedore exactly as for a pip-installed plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from mcp_engine import (
    Action,
    ConditionType,
    EventSink,
    IntegrationClient,
    IntentClassifier,
    RuleKind,
    StateType,
    hookimpl,
)
from mcp_engine.cli import main
from mcp_engine.flow.schema import flow_schema
from mcp_engine.flow.validate import validate_data
from mcp_engine.plugin_manager import (
    LOAD_PLUGINS_ENV,
    PluginHost,
    Provider,
    create_plugin_manager,
    enabled_entry_points,
)
from mcp_engine.registry import Registry, default_registry
from tests.plugin_kit import FAKE_MODULES, Install, carousel_flow

ENGINE_VERSION = importlib.metadata.version("mcp-engine")
CAROUSEL = Provider("mcp-engine-carousel", "1.2.0", "carousel")


def test_builtins_come_from_the_engine_distribution_at_its_version() -> None:
    registry = Registry.from_plugin_manager(create_plugin_manager(load_entrypoints=False))
    assert registry.state_types.providers["response"] == Provider(
        "mcp-engine", ENGINE_VERSION, "mcp_engine.plugins.states.response"
    )
    for kind in registry.kinds():
        assert kind.names(), f"no built-in {kind.label}"
        assert all(provider.builtin for provider in kind.providers.values())


def test_a_third_party_plugin_is_found_and_usable_by_the_validator(install: Install) -> None:
    install("carousel")
    registry = default_registry()
    assert registry.state_types.providers["carousel"] == CAROUSEL
    assert registry.actions.providers["send_sms"] == CAROUSEL
    assert "carousel" in flow_schema(registry)["$defs"]["State"]["properties"]["type"]["enum"]
    result = validate_data(carousel_flow(), registry)
    assert result.ok, [p.short() for p in result.errors]
    bad = carousel_flow()
    bad["states"]["helping"]["config"]["colour"] = "red"
    assert "/states/helping/config/colour" in {p.pointer for p in validate_data(bad, registry).errors}


def test_a_plugin_that_fails_to_import_is_logged_with_its_distribution_and_skipped(
    install: Install, caplog: pytest.LogCaptureFixture
) -> None:
    install("carousel", "broken")
    registry = default_registry()
    assert "carousel" in registry.state_types.names()
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "plugin 'broken' from mcp-engine-broken 0.3.0" in record.getMessage()
    assert "mcp_engine_fake_missing_dependency" in record.getMessage()
    (skipped,) = registry.skipped
    assert skipped.provider == Provider("mcp-engine-broken", "0.3.0", "broken")
    assert "mcp_engine_fake_missing_dependency" in skipped.reason


def test_a_plugin_clashing_with_a_builtin_is_skipped_naming_both_distributions(install: Install) -> None:
    install("clash", "carousel")
    registry = default_registry()
    assert registry.state_types.providers["response"].builtin
    assert "carousel" in registry.state_types.names()
    (skipped,) = registry.skipped
    assert skipped.provider == Provider("mcp-engine-clash", "2.0.0", "clash")
    assert "state type 'response' is provided twice" in skipped.reason
    assert f"mcp-engine {ENGINE_VERSION}" in skipped.reason
    assert "mcp-engine-clash 2.0.0" in skipped.reason


def test_a_misspelled_hook_skips_the_plugin_naming_its_distribution_and_the_real_hooks(
    install: Install, caplog: pytest.LogCaptureFixture
) -> None:
    install("typo", "carousel")
    registry = default_registry()
    assert "carousel" in registry.state_types.names()
    (skipped,) = registry.skipped
    assert skipped.provider == Provider("mcp-engine-typo", "0.1.0", "typo")
    assert "unknown hook 'mcp_engine_state_type'" in skipped.reason
    assert "mcp_engine_state_types" in skipped.reason
    assert any("mcp-engine-typo 0.1.0" in r.getMessage() for r in caplog.records)


class Misbehaving:
    """A plugin whose state type hook answers with something that is not a state type."""

    @hookimpl
    def mcp_engine_state_types(self) -> list[Any]:
        return [demo(StateType), "not a class"]

    @hookimpl
    def mcp_engine_actions(self) -> list[type[Action]]:
        return [demo(Action)]


class Raising:
    @hookimpl
    def mcp_engine_actions(self) -> list[type[Action]]:
        raise RuntimeError("no config file")


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (Misbehaving(), "which is not a StateType subclass"),
        (Raising(), "raised RuntimeError('no config file')"),
    ],
)
def test_a_plugin_answering_a_hook_badly_is_skipped_whole(plugin: object, reason: str) -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register_from(plugin, "odd", Provider("acme-odd", "1.0", "odd"))
    registry = Registry.from_plugin_manager(pm)
    assert "demo" not in registry.state_types.names() + registry.actions.names()
    (skipped,) = registry.skipped
    assert skipped.provider == Provider("acme-odd", "1.0", "odd")
    assert reason in skipped.reason
    assert pm.get_plugin("odd") is None


def test_only_allowed_plugins_load_and_the_others_are_never_imported(
    install: Install, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install("carousel", "broken", "clash")
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "carousel")
    registry = default_registry()
    assert registry.state_types.providers["carousel"] == CAROUSEL
    assert registry.skipped == []
    assert "fake_broken" not in sys.modules
    assert "fake_clash" not in sys.modules
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_empty_allow_list_loads_no_third_party_plugin(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("carousel", "broken", "clash")
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "")
    assert all(row["provider"] == "mcp-engine" for row in default_registry().describe())
    assert not FAKE_MODULES & set(sys.modules)


def test_the_allow_argument_overrides_the_environment(
    install: Install, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("carousel", "clash")
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "")
    pm = create_plugin_manager(allow=["carousel"])
    assert pm.providers["carousel"] == CAROUSEL
    assert "fake_clash" not in sys.modules
    create_plugin_manager(load_entrypoints=False, allow=["clash"])
    assert "fake_clash" not in sys.modules


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", []), (" , ", []), ("carousel", ["carousel"]), (" a , b,,", ["a", "b"])],
)
def test_the_allow_list_variable(
    value: str | None, expected: list[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)
    else:
        monkeypatch.setenv(LOAD_PLUGINS_ENV, value)
    assert enabled_entry_points() == expected


def test_an_allowed_name_that_is_not_installed_is_warned_about(
    install: Install, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install("carousel")
    monkeypatch.setenv(LOAD_PLUGINS_ENV, "carousel,carousell")
    assert "carousel" in default_registry().state_types.names()
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.getMessage() == f"{LOAD_PLUGINS_ENV} names plugins that are not installed: carousell"


def demo(base: type[Any]) -> type[Any]:
    return type(f"Demo{base.__name__}", (base,), {"name": "demo", "__doc__": f"A demo {base.__name__}."})


class EveryKind:
    """An in-process plugin implementing every hook, each answering one class named ``demo``."""

    @hookimpl
    def mcp_engine_state_types(self) -> list[type[StateType]]:
        return [demo(StateType)]

    @hookimpl
    def mcp_engine_actions(self) -> list[type[Action]]:
        return [demo(Action)]

    @hookimpl
    def mcp_engine_condition_types(self) -> list[type[ConditionType]]:
        return [demo(ConditionType)]

    @hookimpl
    def mcp_engine_integration_clients(self) -> list[type[IntegrationClient]]:
        return [demo(IntegrationClient)]

    @hookimpl
    def mcp_engine_intent_classifiers(self) -> list[type[IntentClassifier]]:
        return [demo(IntentClassifier)]

    @hookimpl
    def mcp_engine_rule_kinds(self) -> list[type[RuleKind]]:
        return [demo(RuleKind)]

    @hookimpl
    def mcp_engine_event_sinks(self) -> list[type[EventSink]]:
        return [demo(EventSink)]


def every_kind_registry() -> Registry:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register_from(EveryKind(), "every-kind", Provider("acme-plugins", "9.9", "every-kind"))
    return Registry.from_plugin_manager(pm)


@pytest.mark.parametrize(
    ("attr", "base"),
    [
        ("state_types", StateType),
        ("actions", Action),
        ("conditions", ConditionType),
        ("integration_clients", IntegrationClient),
        ("classifiers", IntentClassifier),
        ("rule_kinds", RuleKind),
        ("event_sinks", EventSink),
    ],
)
def test_each_hook_fills_its_kind_with_provenance(attr: str, base: type[Any]) -> None:
    kind = getattr(every_kind_registry(), attr)
    assert issubclass(kind.get("demo"), base)
    assert kind.providers["demo"] == Provider("acme-plugins", "9.9", "every-kind")


def test_a_plugin_registered_directly_is_its_own_provider() -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(EveryKind(), name="local")
    assert Registry.from_plugin_manager(pm).actions.providers["demo"] == Provider("local", "", "local")


def test_one_plugin_name_from_two_distributions_skips_the_second() -> None:
    pm = PluginHost()
    assert pm.register_from(EveryKind(), "demo", Provider("acme-a", "1", "demo"))
    assert not pm.register_from(EveryKind(), "demo", Provider("acme-b", "2", "demo"))
    (skipped,) = pm.skipped
    assert skipped.provider == Provider("acme-b", "2", "demo")
    assert "plugin 'demo' is provided twice: by acme-a 1" in skipped.reason
    assert pm.provider_of("demo") == Provider("acme-a", "1", "demo")


def test_two_third_party_plugins_with_one_class_name_keep_the_first() -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register_from(EveryKind(), "first", Provider("acme-a", "1", "first"))
    pm.register_from(EveryKind(), "second", Provider("acme-b", "2", "second"))
    registry = Registry.from_plugin_manager(pm)
    assert registry.actions.providers["demo"] == Provider("acme-a", "1", "first")
    assert [s.provider.plugin for s in registry.skipped] == ["second"]


def test_blocked_builtins_leave_their_names_to_a_plugin() -> None:
    class Replacement:
        @hookimpl
        def mcp_engine_state_types(self) -> list[type[StateType]]:
            return [type("Wait", (StateType,), {"name": "wait"})]

    pm = create_plugin_manager(load_entrypoints=False, blocked=["mcp_engine.plugins.states.wait"])
    pm.register_from(Replacement(), "waits", Provider("acme-waits", "1", "waits"))
    registry = Registry.from_plugin_manager(pm)
    assert registry.state_types.providers["wait"] == Provider("acme-waits", "1", "waits")
    assert registry.skipped == []


def test_describe_lists_kind_name_provider_version_and_description(install: Install) -> None:
    install("carousel")
    rows = default_registry().describe()
    assert {
        "kind": "state type",
        "name": "carousel",
        "provider": "mcp-engine-carousel",
        "version": "1.2.0",
        "plugin": "carousel",
        "description": "Shows a carousel of items.",
    } in rows
    assert {"kind": "action", "name": "send_sms", "description": "Sends a text message."}.items() <= next(
        row for row in rows if row["name"] == "send_sms"
    ).items()
    assert {row["kind"] for row in rows} == {kind.label for kind in Registry().kinds()}


@pytest.mark.parametrize("enabled", [["carousel"], ["mcp-engine-carousel"], ["MCP_Engine.Carousel"]])
def test_a_tenant_that_enabled_a_plugin_by_name_or_distribution_sees_it(
    install: Install, enabled: list[str]
) -> None:
    install("carousel")
    view = default_registry().tenant_view(enabled)
    assert view.state_types.providers["carousel"] == CAROUSEL
    assert validate_data(carousel_flow(), view).ok


def test_a_tenant_that_did_not_enable_a_plugin_fails_validation_but_keeps_builtins(install: Install) -> None:
    install("carousel")
    registry = default_registry()
    assert registry.tenant_view(None) is registry
    view = registry.tenant_view(["some-other-plugin"])
    assert "carousel" not in view.state_types.names()
    assert view.state_types.names() == sorted(set(registry.state_types.names()) - {"carousel"})
    errors = validate_data(carousel_flow(), view).errors
    assert {p.pointer for p in errors} >= {"/states/helping/type", "/states/helping/entry_actions/0/type"}


def test_the_plugins_command_prints_a_table_or_json(install: Install) -> None:
    install("carousel")
    text = CliRunner().invoke(main, ["plugins"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PROVIDER"]
    assert any(
        line.split() == ["state", "type", "carousel", "mcp-engine-carousel", "1.2.0"] for line in lines
    )
    assert "SKIPPED" not in text.output
    as_json = CliRunner().invoke(main, ["plugins", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == {"plugins": default_registry().describe(), "skipped": []}


def test_the_plugins_command_shows_the_skipped_plugins_and_why(install: Install) -> None:
    install("carousel", "broken", "clash")
    text = CliRunner().invoke(main, ["plugins"])
    assert text.exit_code == 0, text.output
    skipped = text.output.split("\n\n", 1)[1].splitlines()
    assert skipped[0].split() == ["SKIPPED", "PROVIDER", "REASON"]
    assert skipped[1].startswith("broken ")
    assert "mcp-engine-broken 0.3.0" in skipped[1]
    assert "mcp_engine_fake_missing_dependency" in skipped[1]
    assert skipped[2].startswith("clash ")
    assert "state type 'response' is provided twice" in skipped[2]
    as_json = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)
    assert [(s["distribution"], s["plugin"]) for s in as_json["skipped"]] == [
        ("mcp-engine-broken", "broken"),
        ("mcp-engine-clash", "clash"),
    ]

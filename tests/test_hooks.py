"""Every hook is documented and exercised by a test of its own, or this fails (as datasette does).

A hook added to ``hookspecs.py`` fails here until it has a docstring with an example, a section of
docs/plugins.md (a ``### `mcp_engine_...` `` heading) and a ``test_hook_<hook>`` test below; so does a
hook the registry does not turn into a plugin kind. Each ``test_hook_`` test runs the plugin template's
own tests of the kind that hook provides, on the template rendered by ``mcp-engine new-plugin`` and
installed by pip (outside the engine's environment, on this process's path).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mcp_engine import hookspecs
from mcp_engine.registry import Registry
from tests.template_kit import install_into, new_plugin

pytest_plugins = ("pytester",)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HOOKS = sorted(
    name
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, f"{hookspecs.hookspec.project_name}_spec")
)


def test_the_hooks_are_found() -> None:
    assert "mcp_engine_state_types" in HOOKS
    assert all(name.startswith("mcp_engine_") for name in HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_says_when_it_is_called_and_shows_an_example(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc, f"{hook} has no docstring"
    assert "Called once" in doc, f"{hook}'s docstring does not say when it is called"
    assert "Example::" in doc, f"{hook}'s docstring has no example"
    assert f"@hookimpl\n    def {hook}(" in doc, f"{hook}'s example does not implement {hook}"


def test_docs_plugins_md_has_a_section_per_hook_and_none_other() -> None:
    headings = re.findall(r"^### `(mcp_engine_\w+)`", DOCS.read_text(encoding="utf-8"), re.MULTILINE)
    assert sorted(headings) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    assert f"test_hook_{hook}" in globals(), f"no test_hook_{hook} in {__name__}"


def test_every_hook_fills_a_kind_of_the_registry() -> None:
    assert sorted(hook for _, hook in Registry.HOOKS) == HOOKS


# --- each hook, through the template's example of its kind --------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The template with every kind, rendered and installed once: its folder, and where it is installed."""
    project = new_plugin("hooked", tmp_path_factory.mktemp("rendered"))
    site = tmp_path_factory.mktemp("site")
    install_into(project, site)
    return project, site


@pytest.fixture
def template_tests(
    template: tuple[Path, Path], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], None]:
    """Runs the rendered project's ``tests/test_<kind>.py`` in this process, with its plugin installed."""
    project, site = template
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("MCP_ENGINE_LOAD_PLUGINS", raising=False)

    def run(kind: str) -> None:
        result = pytester.runpytest_inprocess(
            str(project / "tests" / f"test_{kind}.py"), "-p", "no:cacheprovider"
        )
        assert result.ret == 0, result.stdout.str()
        assert result.parseoutcomes()["passed"] >= 1

    return run


def test_hook_mcp_engine_state_types(template_tests: Callable[[str], None]) -> None:
    template_tests("states")


def test_hook_mcp_engine_actions(template_tests: Callable[[str], None]) -> None:
    template_tests("actions")


def test_hook_mcp_engine_condition_types(template_tests: Callable[[str], None]) -> None:
    template_tests("conditions")


def test_hook_mcp_engine_integration_clients(template_tests: Callable[[str], None]) -> None:
    template_tests("integrations")


def test_hook_mcp_engine_rule_kinds(template_tests: Callable[[str], None]) -> None:
    template_tests("rules")


def test_hook_mcp_engine_intent_classifiers(template_tests: Callable[[str], None]) -> None:
    template_tests("classifiers")


def test_hook_mcp_engine_event_sinks(template_tests: Callable[[str], None]) -> None:
    template_tests("sinks")

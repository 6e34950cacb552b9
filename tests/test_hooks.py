"""Every hook is documented with an example and has a test of its own, or this fails (as datasette does).

A hook added to ``hookspecs.py`` without a docstring, or that no other test file names, fails here;
so does a hook the registry does not turn into a plugin kind.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mcp_engine import hookspecs
from mcp_engine.registry import Registry

TESTS = Path(__file__).resolve().parent
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


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    others = [path for path in TESTS.rglob("test_*.py") if path.resolve() != Path(__file__).resolve()]
    assert any(hook in path.read_text(encoding="utf-8") for path in others), f"no test names {hook}"


def test_every_hook_fills_a_kind_of_the_registry() -> None:
    assert sorted(hook for _, hook in Registry.HOOKS) == HOOKS

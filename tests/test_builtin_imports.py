"""Built-in plugins use only the public API: ``from mcp_engine import <name in __all__>``.

Built-ins are the model third-party authors copy, so they must not reach into modules like
``mcp_engine.flow.models`` or ``mcp_engine.contract``: whatever a plugin needs is exported from the
package root, where it stays stable. Importing another built-in (``mcp_engine.plugins...``) is allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mcp_engine

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
PUBLIC = frozenset(mcp_engine.__all__)


def module_name(path: Path) -> str:
    """The import name of a file under ``plugins/`` (the folder is ``mcp_engine.plugins``)."""
    parts = path.relative_to(PLUGINS).with_suffix("").parts
    return ".".join(("mcp_engine", "plugins", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(node: ast.ImportFrom, module: str, package: bool) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts[: len(parts) - node.level + (1 if package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def allowed_module(name: str) -> bool:
    """Anything outside the engine, and the built-ins themselves."""
    engine = name == "mcp_engine" or name.startswith("mcp_engine.")
    builtin = name == "mcp_engine.plugins" or name.startswith("mcp_engine.plugins.")
    return not engine or builtin


def violations(source: str, module: str, package: bool = False) -> list[tuple[int, str]]:
    """(line, what) for every import of ``mcp_engine`` a plugin may not write, wherever it is."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if not allowed_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node, module, package)
            if target == "mcp_engine":
                private = [a.name for a in node.names if a.name not in PUBLIC]
                if private:
                    found.append(
                        (node.lineno, f"from mcp_engine import {', '.join(private)} (not in __all__)")
                    )
            elif not allowed_module(target):
                found.append((node.lineno, f"from {target} import {', '.join(a.name for a in node.names)}"))
    return found


def test_built_in_plugins_import_only_the_public_api() -> None:
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 10
    problems = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in files
        for line, what in violations(path.read_text(encoding="utf-8"), module_name(path), is_package(path))
    ]
    assert not problems, "import these from the package root instead:\n" + "\n".join(problems)


STATES = "mcp_engine.plugins.states.end"


@pytest.mark.parametrize(
    "source",
    [
        "from mcp_engine.flow.models import Flow",
        "from mcp_engine.contract import TurnView",
        "import mcp_engine.contract",
        "import mcp_engine",
        "from mcp_engine import contract",
        "from mcp_engine import *",
        "from ...flow import models",
        "from ... import contract",
        "if TYPE_CHECKING:\n    from mcp_engine.contract import TurnView",
        "def f():\n    from mcp_engine.flow.models import Flow",
    ],
)
def test_the_checker_catches_private_imports(source: str) -> None:
    (line, what) = violations(source, STATES)[0]
    assert line == source.count("\n") + 1
    assert what


@pytest.mark.parametrize(
    "source",
    [
        "from mcp_engine import StateType, TurnView, hookimpl",
        "from mcp_engine.plugins.states.response import template_references",
        "import mcp_engine.plugins.states.response",
        "from .response import template_references",
        "from ..actions import send_message",
        "import re\nfrom pydantic import BaseModel",
    ],
)
def test_the_checker_allows_the_public_api_and_other_built_ins(source: str) -> None:
    assert violations(source, STATES) == []


def test_relative_imports_resolve_from_a_package_too() -> None:
    assert violations("from ..flow import models", "mcp_engine.plugins", package=True)
    assert not violations("from .states import end", "mcp_engine.plugins", package=True)


def test_the_re_implemented_states_import_only_the_public_api_too() -> None:
    """tests/fake_dists/fake_statekit.py (the intent and wait states outside the package, see
    tests/conftest.py) proves the contract only if it uses nothing else of the engine."""
    path = ROOT / "tests" / "fake_dists" / "fake_statekit.py"
    assert violations(path.read_text(encoding="utf-8"), "fake_statekit") == []
    assert "mcp_engine.plugins" not in path.read_text(encoding="utf-8")

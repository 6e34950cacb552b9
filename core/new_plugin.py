"""``mcp-engine new-plugin``: a plugin distribution rendered from the template that ships with the engine.

The template is ``plugin_template/`` (package data of ``mcp_engine.plugin_template``), rendered by copier:
its files are ``*.jinja`` (so the engine's linters, type checker and test runner never mistake them for
code), a file whose name renders empty is left out (how ``--kind`` drops examples), and ``copier.yml``
validates the answers, so ``copier copy`` on the folder and this command make the same project.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path

from mcp_engine import __version__

KINDS = ("state", "action", "condition", "integration", "rule", "classifier", "sink")


def engine_requirement(version: str = __version__) -> str:
    """The engine versions a new plugin supports: this one up to the next breaking release (the next
    minor while the engine is 0.x, as semantic versioning allows it to break there)."""
    major, minor = (int(part) for part in version.split(".")[:2])
    cap = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"mcp-engine>={major}.{minor},<{cap}"


def render_plugin(name: str, parent: Path, kinds: Sequence[str] = KINDS) -> Path:
    """Render the plugin ``name`` (with an example of each of ``kinds``) into ``parent/mcp-engine-NAME``;
    the project's folder. ``ValueError`` for a bad name or kind, or when the folder is not empty."""
    from copier import run_copy

    target = parent / f"mcp-engine-{name.replace('_', '-')}"
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{target} already exists and is not empty")
    with importlib.resources.as_file(importlib.resources.files("mcp_engine.plugin_template")) as template:
        # from where the files really are: an editable install links them one by one, and copier refuses
        # a file that links out of the template
        run_copy(
            str((template / "copier.yml").resolve().parent),
            target,
            data={"name": name, "kinds": list(kinds), "engine_requirement": engine_requirement()},
            defaults=True,
            quiet=True,
        )
    return target

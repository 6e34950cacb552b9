"""Fixtures shared by the runtime tests.

The turn tests run twice (the ``states`` fixture): on the built-in ``intent`` and ``wait`` state types,
and with those blocked and ``tests/fake_dists/fake_statekit.py`` in their place, a distribution outside
the package that re-implements both through the public contract only, found through its entry point like
any installed plugin. Passing the same tests both ways is the proof that the host names no built-in type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcp_engine.plugin_manager import Provider, create_plugin_manager
from mcp_engine.registry import Registry
from tests.plugin_kit import Install, installed_site

REIMPLEMENTED = ("mcp_engine.plugins.states.intent", "mcp_engine.plugins.states.wait")
STATEKIT = Provider("mcp-engine-statekit", "1.0.0", "statekit")


@dataclass(frozen=True)
class States:
    """Which implementation of ``intent`` and ``wait`` a test runs on: the built-ins (``plugin`` None),
    or the statekit plugin module replacing them."""

    name: str
    plugin: object | None = None

    def registry(self, *extra: object) -> Registry:
        """The registry of this implementation, with ``extra`` in-process plugins (a test's own action)."""
        pm = create_plugin_manager(load_entrypoints=False, blocked=REIMPLEMENTED if self.plugin else ())
        if self.plugin is not None:
            pm.register_from(self.plugin, STATEKIT.plugin, STATEKIT)
        for plugin in extra:
            pm.register(plugin)
        return Registry.from_plugin_manager(pm)


@pytest.fixture(scope="session")
def statekit(tmp_path_factory: pytest.TempPathFactory) -> States:
    """The statekit distribution, installed and discovered through its entry point once per session."""
    with pytest.MonkeyPatch.context() as patch, installed_site(tmp_path_factory.mktemp("site"), patch) as put:
        put("statekit")
        pm = create_plugin_manager(allow=[STATEKIT.plugin], blocked=REIMPLEMENTED)
        assert pm.providers[STATEKIT.plugin] == STATEKIT
        return States("statekit", pm.get_plugin(STATEKIT.plugin))


@pytest.fixture(params=["builtin", "statekit"])
def states(request: pytest.FixtureRequest, statekit: States) -> States:
    return statekit if request.param == "statekit" else States("builtin")


@pytest.fixture
def engine_registry(states: States) -> Registry:
    """The kit's ``engine`` (a fresh embedded store, no flows published) runs on each implementation of
    the states."""
    return states.registry()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install fake third-party distributions by name (``install("carousel")``) for this test."""
    with installed_site(tmp_path / "site-packages", monkeypatch) as installer:
        yield installer

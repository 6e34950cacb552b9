"""The engine's pytest plugin (entry point ``pytest11``): the fixtures a plugin team's tests need.

Installed with the engine, so every test suite in its environment has them (``-p no:mcp_engine`` turns
them off). What the engine is made of is itself a fixture, to override in a ``conftest.py``:
``engine_plugins`` (which installed plugins load), ``engine_options`` (settings), ``engine_env`` (the
environment plugins read secrets from), or ``engine_registry`` (the whole registry).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_engine.registry import Registry
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing.engine import Converse, engine_settings, plugin_registry, start_engine
from mcp_engine.testing.fake_integration import FakeIntegration

async_fixture: Callable[..., Any]
try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # without pytest-asyncio, the async fixtures need another plugin's asyncio support
    async_fixture = pytest.fixture


@pytest.fixture
def engine_plugins() -> list[str] | None:
    """The installed plugins (entry-point names) the engine loads beside the built-ins; None (the
    default): every installed one ``MCP_ENGINE_LOAD_PLUGINS`` allows."""
    return None


@pytest.fixture
def engine_registry(engine_plugins: list[str] | None) -> Registry:
    """The engine's plugin registry, from ``engine_plugins``."""
    return plugin_registry(engine_plugins)


@pytest.fixture
def engine_options() -> dict[str, Any]:
    """Engine settings by field name, e.g. ``{"event_sinks": "store,my_sink"}``; none by default."""
    return {}


@pytest.fixture
def engine_env() -> dict[str, str]:
    """The environment the engine's plugins see (where ``${env:NAME}`` secrets are read); empty."""
    return {}


@async_fixture
async def embedded_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """An open embedded (SQLite) store in the test's temporary folder."""
    store = SQLiteStore(str(tmp_path / "engine.db"))
    await store.open()
    yield store
    await store.close()


@async_fixture
async def engine(
    embedded_store: SQLiteStore,
    engine_registry: Registry,
    engine_options: dict[str, Any],
    engine_env: dict[str, str],
) -> AsyncIterator[ExecutionService]:
    """A started engine on ``embedded_store`` with the plugins of ``engine_registry``, no flow published."""
    started = await start_engine(
        embedded_store, engine_registry, engine_settings(**engine_options), engine_env
    )
    yield started
    await started.close()


@pytest.fixture
def converse(engine: ExecutionService) -> Converse:
    """``await converse(flow, ["hi", ...])``: the replies (texts, state) of a new conversation on ``flow``."""
    return Converse(engine)


@async_fixture
async def fake_integration() -> AsyncIterator[FakeIntegration]:
    """A real aiohttp server on 127.0.0.1 to point an integration's ``base_url`` at (``.url()``)."""
    async with FakeIntegration() as fake:
        yield fake

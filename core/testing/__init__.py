"""The test kit of MCP Engine, for plugin teams and for the engine's own tests.

Its pytest fixtures (``engine``, ``converse``, ``fake_integration``, ``embedded_store`` and the
configuration fixtures) are registered through the ``pytest11`` entry point, from
``mcp_engine.testing.plugin``; the names below are what a test imports, for types and for engines made
by hand. docs/plugins.md, "Testing a plugin", shows them in use.
"""

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.testing.engine import (
    Conversation,
    Converse,
    FlowSource,
    Reply,
    engine_settings,
    flow_document,
    granted_environment,
    plugin_registry,
    start_engine,
)
from mcp_engine.testing.fake_integration import FakeIntegration, Received

Engine = ExecutionService  # the type of the ``engine`` fixture

__all__ = [
    "Conversation",
    "Converse",
    "Engine",
    "FakeIntegration",
    "FlowSource",
    "Received",
    "Reply",
    "engine_settings",
    "flow_document",
    "granted_environment",
    "plugin_registry",
    "start_engine",
]

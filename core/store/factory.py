"""Which store an engine runs on, from its settings (SPEC §7 "Configuration").

Without ``POSTGRES_URI``/``REDIS_URL``: the embedded SQLite file (``MCP_SQLITE_PATH``). With either of them
the operator asked for the production store; until it exists that is a clear error at start, never a
silent fall back to a local file that other engine processes would not share.
"""

from __future__ import annotations

from mcp_engine.config import EngineSettings
from mcp_engine.errors import EngineError
from mcp_engine.store.base import Store
from mcp_engine.store.sqlite import SQLiteStore


def open_store(settings: EngineSettings) -> Store:
    """The store ``settings`` name, unopened (``ExecutionService.start`` opens and migrates it)."""
    if settings.postgres_uri or settings.redis_url:
        raise EngineError(
            "PostgreSQL + Redis store not available yet: unset POSTGRES_URI and REDIS_URL to run on the "
            "embedded SQLite store (MCP_SQLITE_PATH)",
            {"postgres_uri": bool(settings.postgres_uri), "redis_url": bool(settings.redis_url)},
        )
    return SQLiteStore(settings.sqlite_path)


def describe_store(store: Store, settings: EngineSettings) -> str:
    """One line for the start banner: which store, and where."""
    if isinstance(store, SQLiteStore):
        return f"embedded SQLite at {settings.sqlite_path} (in-process locks and timers; one engine process)"
    return store.name

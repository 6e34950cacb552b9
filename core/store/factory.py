"""Which store an engine runs on, from its settings (SPEC §7 "Configuration").

Without ``POSTGRES_URI``/``REDIS_URL``: the embedded SQLite file (``MCP_SQLITE_PATH``). With both: the
production store, shared by every engine process. With only one of them the operator meant the production
store but forgot half of it: a clear error at start, never a silent fall back to a local file that other
engine processes would not share.
"""

from __future__ import annotations

from mcp_engine.config import EngineSettings
from mcp_engine.errors import EngineError
from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore


def open_store(settings: EngineSettings) -> Store:
    """The store ``settings`` name, unopened (``ExecutionService.start`` opens and migrates it)."""
    if settings.postgres_uri and settings.redis_url:
        return ProductionStore(
            settings.postgres_uri,
            settings.redis_url,
            schema=settings.postgres_schema,
            key_prefix=settings.redis_prefix,
            pool_size=settings.postgres_pool_size,
            lock_lease_s=max(10.0, settings.state_execution_timeout_ms / 1000),
            timer_lease_s=timer_lease_s(settings),
        )
    if settings.postgres_uri or settings.redis_url:
        missing = "REDIS_URL" if settings.postgres_uri else "POSTGRES_URI"
        raise EngineError(
            f"PostgreSQL + Redis store not available yet: {missing} is not set (the production store needs"
            " both POSTGRES_URI and REDIS_URL; unset both to run on the embedded SQLite store,"
            " MCP_SQLITE_PATH)",
            {"postgres_uri": bool(settings.postgres_uri), "redis_url": bool(settings.redis_url)},
        )
    return SQLiteStore(settings.sqlite_path, timer_lease_s=timer_lease_s(settings))


def timer_lease_s(settings: EngineSettings) -> float:
    """How long a claimed timer stays its claimer's: longer than its turn can take (the lock wait and the
    turn's own deadline), twice over, and at least a minute."""
    turn_s = (settings.context_lock_timeout_ms + settings.state_execution_timeout_ms) / 1000
    return max(60.0, 2 * turn_s)


def describe_store(store: Store, settings: EngineSettings) -> str:
    """One line for the start banner: which store, and where (never the URIs: they may hold passwords)."""
    if isinstance(store, SQLiteStore):
        return (
            f"embedded SQLite at {settings.sqlite_path} (in-process locks: a conversation's turns are"
            " ordered within one process; several, e.g. serve --workers, are kept correct by compare-and-set)"
        )
    if isinstance(store, ProductionStore):
        where = f"schema {store.schema}, pool {store.pool_size}"
        return f"PostgreSQL ({where}) + Redis (key prefix {store.key_prefix}): shared by every engine process"
    return store.name

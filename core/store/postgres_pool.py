"""What the PostgreSQL parts of the production store share: the pool and its connections, and turning
an outage into ``StoreUnavailable``.

Each pool connection's ``search_path`` is the store's schema, so a schema per test or per deployment
needs no qualified names; asyncpg prepares and caches every statement per connection, and a connection
goes back to the pool without asyncpg's reset query (the engine leaves no session state behind), which
would otherwise cost a second round trip per statement.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]
import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mcp_engine.errors import StoreUnavailable

CONVERSATION = "tenant_id = $1 AND conversation_id = $2"  # the WHERE of a conversation's rows
# What an unreachable or restarting PostgreSQL or Redis raises (refused, reset, terminated by an operator,
# timed out): the store is unavailable, not broken, and the same request can be retried later.
OUTAGE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
    RedisConnectionError,
    RedisTimeoutError,
)
P = ParamSpec("P")
R = TypeVar("R")
U = TypeVar("U", bound="PoolUser")


def unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        "the conversation store is unavailable right now; retry the request",
        {"reason": type(exc).__name__},
    )


def outage_is_unavailable(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Raise ``StoreUnavailable`` for an outage, instead of a driver error that adapters render as an
    opaque INTERNAL (not retryable, and logged as a bug)."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except OUTAGE as exc:
            raise unavailable(exc) from exc

    return guarded


def changes_catalogue(
    method: Callable[Concatenate[U, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[U, P], Coroutine[Any, Any, R]]:
    """A write that changes what new runs look up (a tenant, a flow's published version, a running
    experiment): once it succeeded, the catalogue gets a new stamp, so every process's cached lookups are
    stale from its next turn on."""

    @functools.wraps(method)
    async def changed(self: U, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result = await method(self, *args, **kwargs)
        await self._catalogue_changed()
        return result

    return changed


async def open_pool(uri: str, schema: str, size: int) -> asyncpg.Pool:
    """A pool of connections on ``schema``, with jsonb through orjson and no reset query."""
    return await asyncpg.create_pool(
        uri,
        min_size=1,
        max_size=size,
        server_settings={"search_path": schema},
        init=_init_connection,
        reset=_keep_session,
    )


async def _init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in binary format: we hand over JSON that ``encode_json`` already made (so bad data fails before
    a transaction starts) and get dicts back, both through orjson."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda body: b"\x01" + body,
        decoder=lambda data: orjson.loads(data[1:]),
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing. asyncpg's default resets every session setting with an extra query each
    time a connection goes back to the pool; the engine sets none (``search_path`` is a startup setting),
    holds no advisory lock past a call and listens to nothing, and asyncpg still rolls back a transaction
    left open."""


class PoolUser:
    """A part of the store that runs its statements on the pool ``ProductionStore.open`` made."""

    _pool: asyncpg.Pool | None = None

    async def _catalogue_changed(self) -> None:
        """Give the catalogue a new stamp (``Store.catalogue_stamp``): ``ProductionStore`` does, in Redis."""
        raise NotImplementedError

    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("ProductionStore is not open")
        return self._pool

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._db().acquire() as conn, conn.transaction():
            yield conn


def count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])

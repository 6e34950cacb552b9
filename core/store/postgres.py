"""The production store: PostgreSQL (source of truth) + Redis (cache, locks, idempotency cache, schedule).

Why it is built this way (ARCHITECTURE.md "Stores"):
- every write a turn makes goes to PostgreSQL in one statement (``postgres_turns``), so one round trip
  and one implicit transaction (context compare-and-set, history events, idempotency record, timer row,
  an experiment run's counts); the history rows are the turn's events' only copy,
  and only then to Redis, so a Redis flush or restart loses nothing;
- the compare-and-set on the conversation's version is the fencing token: a process whose Redis lock expired
  mid-turn finds the version moved on and writes nothing;
- a timer is claimed by a conditional ``UPDATE ... RETURNING`` in PostgreSQL that leases it: it stays there
  until the turn firing it commits (and clears or replaces it in the same statement), so one process fires
  it, also after every process (or Redis) restarted, and a process that dies holding it loses nothing: the
  lease ends and another fires it.

This module is the store itself: opening both, the turn's path (begin, commit, reset, lock) and timers,
where PostgreSQL and Redis work together. The parts on PostgreSQL alone are their own modules: the pool
and outage handling (``postgres_pool``), tenants, keys and flow versions (``postgres_catalogue``),
history and analytics events (``postgres_events``), experiments (``postgres_experiments``), the schema
(``postgres_schema``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcp_engine.store.base import (
    Conversation,
    LoadedTurn,
    Timer,
    TurnStart,
    TurnWrite,
    encode_events,
    encode_json,
)
from mcp_engine.store.local_locks import ConversationLocks
from mcp_engine.store.postgres_catalogue import CatalogueTables
from mcp_engine.store.postgres_events import EventTables
from mcp_engine.store.postgres_experiments import ExperimentTables
from mcp_engine.store.postgres_outbound import DeliveryTables
from mcp_engine.store.postgres_pool import (
    CONVERSATION,
    OUTAGE,
    open_pool,
    outage_is_unavailable,
    unavailable,
)
from mcp_engine.store.postgres_schema import SCHEMA_NAME, migrate
from mcp_engine.store.postgres_turns import conflict, write_turn
from mcp_engine.store.redis_breaker import RedisBreakerStore
from mcp_engine.store.redis_parts import HeldLock, RedisParts, milliseconds
from mcp_engine.store.run_tally import tally_runs

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
PURGE_INTERVAL_S = 300.0  # how often a commit also deletes expired idempotency records
SCHEDULE_VALID_S = 60.0  # how long the Redis timer schedule is trusted before it is rebuilt from PostgreSQL
TIMER_LEASE_S = 60.0  # how long a claimed timer is its claimer's before another process may fire it
_TIMER = "tenant_id, conversation_id, due_at, state, run"
READY_TIMEOUT_S = 2.0  # a readiness probe must answer even when a server accepts but never replies


class ProductionStore(CatalogueTables, EventTables, ExperimentTables, DeliveryTables):
    """The ``Store`` on PostgreSQL + Redis (``POSTGRES_URI`` and ``REDIS_URL``): many engine processes share
    one of each and any process can serve any conversation."""

    name = "postgres+redis"

    def __init__(
        self,
        postgres_uri: str,
        redis_url: str,
        *,
        schema: str = "public",
        key_prefix: str = "mcp",
        pool_size: int = 10,
        idempotency_ttl_s: float = DAY_S,
        cache_ttl_s: float = DAY_S,
        lock_lease_s: float = 10.0,
        timer_lease_s: float = TIMER_LEASE_S,
    ) -> None:
        if not SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and _")
        self.postgres_uri = postgres_uri
        self.redis_url = redis_url
        self.schema = schema
        self.pool_size = pool_size
        self.idempotency_ttl_s = idempotency_ttl_s
        self._pool: asyncpg.Pool | None = None
        self._redis_client: Redis | None = None
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError(f"Redis key prefix {key_prefix!r} must not contain braces (they make hash tags)")
        self.key_prefix = key_prefix
        self.cache_ttl_s = cache_ttl_s
        self.lock_lease_s = lock_lease_s
        self.timer_lease_s = timer_lease_s
        self._redis: RedisParts | None = None
        self._local = ConversationLocks()  # this process's queue in front of each Redis lock
        self._next_purge = 0.0

    async def open(self) -> None:
        """Connect to both and migrate the schema; a no-op when already open."""
        if self._pool is not None:
            return
        pool = await open_pool(self.postgres_uri, self.schema, self.pool_size)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, self.schema)
            client = Redis.from_url(self.redis_url)
            await client.ping()
        except BaseException:
            await pool.close()
            raise
        self._pool, self._redis_client = pool, client
        self._redis = RedisParts(
            client,
            self.key_prefix,
            cache_ttl_s=self.cache_ttl_s,
            idempotency_ttl_s=self.idempotency_ttl_s,
            lock_lease_s=self.lock_lease_s,
        )

    async def close(self) -> None:
        pool, client = self._pool, self._redis_client
        self._pool = self._redis_client = self._redis = None
        if pool is not None:
            await pool.close()
        if client is not None:
            await client.aclose()

    async def ready(self) -> bool:
        if self._pool is None or self._redis_client is None:
            return False
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await self._pool.fetchval("SELECT 1")
                await self._redis_client.ping()
        except (*OUTAGE, asyncpg.PostgresError, RedisError):
            return False
        return True

    # the catalogue's stamp (``Store.catalogue_stamp``): in Redis, set after each change is committed
    @outage_is_unavailable
    async def catalogue_stamp(self) -> str | None:
        return await self._parts().stamp()

    async def _catalogue_changed(self) -> None:
        await self._parts().restamp()

    # conversations
    @outage_is_unavailable
    async def load(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        cached = await self._parts().cached(tenant_id, conversation_id)
        if cached is not False:
            return cached
        conversation, _ = await self._refresh(tenant_id, conversation_id)
        return conversation

    async def _refresh(
        self, tenant_id: str, conversation_id: str
    ) -> tuple[Conversation | None, dict[str, bytes]]:
        """Read the conversation and its live idempotency records (message id -> reply JSON) from
        PostgreSQL in one query, and cache both again (a reset row as "not there")."""
        now = time.time()
        row = await self._db().fetchrow(
            "SELECT c.context, c.version, (SELECT json_agg(json_build_array(i.message_id, i.reply,"
            " i.created_at)) FROM idempotency i WHERE i.tenant_id = $1 AND i.conversation_id = $2"
            " AND i.created_at > $3) AS records"
            " FROM (SELECT 1) AS one"
            " LEFT JOIN conversations c ON c.tenant_id = $1 AND c.conversation_id = $2",
            tenant_id,
            conversation_id,
            now - self.idempotency_ttl_s,
        )
        version, context = row["version"], row["context"]
        records = [
            (message_id, orjson.dumps(reply), milliseconds(created_at + self.idempotency_ttl_s - now))
            for message_id, reply, created_at in orjson.loads(row["records"] or "[]")
        ]
        if version is not None or records:
            await self._parts().refill(
                tenant_id,
                conversation_id,
                version or 0,
                None if context is None else orjson.dumps(context),
                records,
            )
        conversation = None if context is None else Conversation(tenant_id, conversation_id, context, version)
        return conversation, {message_id: reply for message_id, reply, _ in records}

    @outage_is_unavailable
    async def reply_for(self, tenant_id: str, conversation_id: str, message_id: str) -> dict[str, Any] | None:
        body = await self._parts().reply(tenant_id, conversation_id, message_id)
        if body is not None:
            reply: dict[str, Any] = orjson.loads(body)
            return reply
        stored: dict[str, Any] | None = await self._db().fetchval(
            f"SELECT reply FROM idempotency WHERE {CONVERSATION} AND message_id = $3 AND created_at > $4",
            tenant_id,
            conversation_id,
            message_id,
            time.time() - self.idempotency_ttl_s,
        )
        return stored

    @asynccontextmanager
    async def begin_turn(
        self,
        tenant_id: str,
        conversation_id: str,
        message_id: str | None,
        timeout_s: float,
        *,
        fresh: bool = False,
    ) -> AsyncIterator[TurnStart]:
        """This process's queue for the conversation, then one Redis round trip (idempotency record, lock,
        cached context); PostgreSQL only on a cache miss, or always when ``fresh``."""
        deadline = time.monotonic() + timeout_s
        async with self._local.hold(tenant_id, conversation_id, timeout_s):
            held, start = await self._begin(
                tenant_id, conversation_id, message_id, max(0.0, deadline - time.monotonic()), fresh
            )
            try:
                yield start
            finally:
                if held is not None:
                    await held.release()

    async def _begin(
        self, tenant_id: str, conversation_id: str, message_id: str | None, timeout_s: float, fresh: bool
    ) -> tuple[HeldLock | None, TurnStart]:
        """The Redis lock (None when the message was processed already) and what the turn starts from.
        Only the store's own calls map an outage to ``StoreUnavailable``: an ``OSError`` of the turn
        itself (an integration's, say) must stay what it is."""
        try:
            began = await self._parts().begin(tenant_id, conversation_id, message_id, timeout_s)
            held = began.held
            if held is None:
                return None, LoadedTurn(self, reply=orjson.loads(began.reply or b"null"))
            if began.cached is not False and not fresh:
                return held, _LockedTurn(self, held, began.cached)
            try:
                conversation, replies = await self._refresh(tenant_id, conversation_id)
            except BaseException:
                await held.release()
                raise
        except OUTAGE as exc:
            raise unavailable(exc) from exc
        stored = None if message_id is None else replies.get(message_id)
        if stored is not None:
            return held, LoadedTurn(self, reply=orjson.loads(stored))
        return held, _LockedTurn(self, held, conversation)

    @outage_is_unavailable
    async def commit(self, write: TurnWrite) -> int:
        return await self._commit(write, None)

    async def _commit(self, write: TurnWrite, held: HeldLock | None) -> int:
        """The turn in one PostgreSQL statement, then mirrored in Redis in one round trip that also
        releases ``held``."""
        # Everything is encoded before the statement is sent: bad data raises with nothing written.
        key = (write.tenant_id, write.conversation_id)
        context = write.encoded_context
        events = encode_events(write.events)
        reply = None if write.reply is None else encode_json(write.reply, "reply")
        if isinstance(write.timer, Timer) and (write.timer.tenant_id, write.timer.conversation_id) != key:
            raise ValueError(f"the timer of {write.timer.conversation_id!r} in a turn of {key[1]!r}")
        record = (write.message_id, reply) if write.message_id is not None and reply is not None else None
        now = time.time()
        tallies = tally_runs(write.events, key)
        version = await write_turn(self._db(), write, context, events, record, now, tallies)
        if version is None:
            await self._refresh(*key)  # a stale cached context is how a writer usually loses
            raise conflict(write)
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL_S
            await self._db().execute(
                "DELETE FROM idempotency WHERE created_at <= $1", now - self.idempotency_ttl_s
            )
        try:
            await self._parts().mirror(*key, version, context, record, write.timer, held)
        except RedisError:
            # Committed in PostgreSQL, which is the truth: a stale cache entry is refreshed by the next
            # writer's failed compare-and-set, a lost schedule entry by the next schedule rebuild.
            log.warning(
                "turn of %s committed, but Redis was not updated", write.conversation_id, exc_info=True
            )
        return int(version)

    @outage_is_unavailable
    async def reset(self, tenant_id: str, conversation_id: str) -> bool:
        async with self._transaction() as conn:
            version = await conn.fetchval(
                "UPDATE conversations SET context = NULL, version = version + 1, updated_at = $3"
                f" WHERE {CONVERSATION} AND context IS NOT NULL RETURNING version",
                tenant_id,
                conversation_id,
                time.time(),
            )
            await conn.execute(f"DELETE FROM timers WHERE {CONVERSATION}", tenant_id, conversation_id)
        await self._parts().forget(tenant_id, conversation_id, version)
        return version is not None

    # timers
    @outage_is_unavailable
    async def due_timers(self, now: float, limit: int = 100) -> list[Timer]:
        """Due timers from PostgreSQL, asked only when the Redis schedule has one due or is not known to be
        complete (then it is rebuilt from PostgreSQL): polling processes mostly touch only Redis."""
        synced, due = await self._parts().schedule_state(now)
        if not synced:
            rows = await self._db().fetch(f"SELECT {_TIMER} FROM timers")
            await self._parts().rebuild([Timer(*row) for row in rows], SCHEDULE_VALID_S)
        elif not due:
            return []
        rows = await self._db().fetch(
            f"SELECT {_TIMER} FROM timers WHERE due_at <= $1"
            " AND (claimed_until IS NULL OR claimed_until <= $3) ORDER BY due_at LIMIT $2",
            now,
            max(limit, 0),
            time.time(),
        )
        return [Timer(*row) for row in rows]

    @outage_is_unavailable
    async def claim_timer(self, timer: Timer) -> bool:
        now = time.time()
        lease_end: float | None = await self._db().fetchval(
            f"UPDATE timers SET claimed_until = $6 WHERE {CONVERSATION} AND due_at = $3 AND state = $4"
            " AND run = $5 AND (claimed_until IS NULL OR claimed_until <= $7) RETURNING claimed_until",
            *_timer_row(timer),
            now + self.timer_lease_s,
            now,
        )
        if lease_end is None:
            return False
        # due again in the schedule when the lease ends: the timer's turn moves or removes it on commit
        await self._parts().reschedule(timer, timer.due_at, lease_end)
        return True

    @outage_is_unavailable
    async def drop_timer(self, timer: Timer) -> None:
        dropped = await self._db().fetchrow(
            f"DELETE FROM timers WHERE {CONVERSATION} AND due_at = $3 AND state = $4 AND run = $5"
            " RETURNING claimed_until",
            *_timer_row(timer),
        )
        if dropped is not None:
            await self._parts().reschedule(timer, dropped["claimed_until"] or timer.due_at, None)

    @asynccontextmanager
    async def lock(self, tenant_id: str, conversation_id: str, timeout_s: float) -> AsyncIterator[None]:
        """This process's queue for the conversation, then the Redis lock; Redis away while taking it is
        ``StoreUnavailable``. Only taking it is mapped: an ``OSError`` of the turn itself (say, an
        integration's) must stay what it is."""
        deadline = time.monotonic() + timeout_s
        async with self._local.hold(tenant_id, conversation_id, timeout_s):
            held = self._parts().lock(tenant_id, conversation_id, max(0.0, deadline - time.monotonic()))
            try:
                await held.__aenter__()
            except OUTAGE as exc:
                raise unavailable(exc) from exc
            try:
                yield
            except BaseException as exc:
                if not await held.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                await held.__aexit__(None, None, None)

    def breaker_store(self) -> RedisBreakerStore:
        if self._redis_client is None:
            raise RuntimeError("ProductionStore is not open")
        return RedisBreakerStore(self._redis_client, self.key_prefix)

    def _parts(self) -> RedisParts:
        if self._redis is None:
            raise RuntimeError("ProductionStore is not open")
        return self._redis


@dataclass
class _LockedTurn:
    """A production turn in progress: its commit also releases the lock, in the same Redis round trip."""

    store: ProductionStore
    held: HeldLock
    conversation: Conversation | None
    reply: dict[str, Any] | None = None

    async def commit(self, write: TurnWrite) -> int:
        try:
            return await self.store._commit(write, self.held)
        except OUTAGE as exc:
            raise unavailable(exc) from exc


def _timer_row(timer: Timer) -> tuple[str, str, float, str, str]:
    return (timer.tenant_id, timer.conversation_id, timer.due_at, timer.state, timer.run)

"""The production store: PostgreSQL (source of truth) + Redis (cache, locks, idempotency cache, schedule).

Why it is built this way (ARCHITECTURE.md "Stores"):
- every write a turn makes goes to PostgreSQL in one statement, so one round trip and one implicit
  transaction (context compare-and-set, history events, idempotency record, timer row), and only then to
  Redis, so a Redis flush or restart loses nothing;
- the compare-and-set on the conversation's version is the fencing token: a process whose Redis lock expired
  mid-turn finds the version moved on and writes nothing;
- a timer is claimed by a conditional ``DELETE ... RETURNING`` in PostgreSQL, so exactly one process fires
  it, also after every process (or Redis) restarted;
- each pool connection's ``search_path`` is the store's schema, so a schema per test or per deployment
  needs no qualified names; asyncpg prepares and caches every statement per connection, and a connection
  goes back to the pool without asyncpg's reset query (the engine leaves no session state behind), which
  would otherwise cost a second round trip per statement.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]
import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mcp_engine.errors import (
    ConcurrentUpdate,
    FlowNotFound,
    InvalidInput,
    StoreUnavailable,
    UnstorableData,
    VersionExists,
)
from mcp_engine.store.base import (
    ApiKey,
    Conversation,
    FlowVersion,
    LoadedTurn,
    Tenant,
    Timer,
    TurnStart,
    TurnWrite,
    encode_json,
)
from mcp_engine.store.local_locks import ConversationLocks
from mcp_engine.store.postgres_schema import SCHEMA_NAME, migrate
from mcp_engine.store.redis_parts import HeldLock, RedisParts, milliseconds

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
PURGE_INTERVAL_S = 300.0  # how often a commit also deletes expired idempotency records
SCHEDULE_VALID_S = 60.0  # how long the Redis timer schedule is trusted before it is rebuilt from PostgreSQL
_FLOW = "tenant_id, flow_id, version, document, status, created_at, published_at"
_TIMER = "tenant_id, conversation_id, due_at, state, run"
_KEY = "key_id, tenant_id, created_at, revoked_at"
_VERSION = "tenant_id = $1 AND flow_id = $2 AND version = $3"
_CONVERSATION = "tenant_id = $1 AND conversation_id = $2"
_MAX_SEQ = 2**63 - 1
READY_TIMEOUT_S = 2.0  # a readiness probe must answer even when a server accepts but never replies
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


class ProductionStore:
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
        self._redis: RedisParts | None = None
        self._local = ConversationLocks()  # this process's queue in front of each Redis lock
        self._next_purge = 0.0

    async def open(self) -> None:
        """Connect to both and migrate the schema; a no-op when already open."""
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(
            self.postgres_uri,
            min_size=1,
            max_size=self.pool_size,
            server_settings={"search_path": self.schema},
            init=_init_connection,
            reset=_keep_session,
        )
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

    # tenants
    @outage_is_unavailable
    async def put_tenant(self, tenant: Tenant) -> None:
        plugins = tenant.enabled_plugins
        await self._db().execute(
            "INSERT INTO tenants (tenant_id, default_flow, enabled_plugins, outbound_webhook)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET default_flow ="
            " EXCLUDED.default_flow, enabled_plugins = EXCLUDED.enabled_plugins,"
            " outbound_webhook = EXCLUDED.outbound_webhook",
            tenant.tenant_id,
            tenant.default_flow,
            None if plugins is None else encode_json(list(plugins), "enabled_plugins"),
            tenant.outbound_webhook,
        )

    @outage_is_unavailable
    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = await self._db().fetchrow(
            "SELECT tenant_id, default_flow, enabled_plugins, outbound_webhook FROM tenants"
            " WHERE tenant_id = $1",
            tenant_id,
        )
        return None if row is None else _tenant(row)

    @outage_is_unavailable
    async def list_tenants(self) -> list[Tenant]:
        rows = await self._db().fetch(
            "SELECT tenant_id, default_flow, enabled_plugins, outbound_webhook FROM tenants"
            " ORDER BY tenant_id"
        )
        return [_tenant(row) for row in rows]

    # API keys
    @outage_is_unavailable
    async def put_api_key(self, tenant_id: str, key_id: str, key_hash: str) -> ApiKey:
        key = ApiKey(key_id, tenant_id, time.time())
        try:
            await self._db().execute(
                "INSERT INTO api_keys (tenant_id, key_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
                tenant_id,
                key_id,
                key_hash,
                key.created_at,
            )
        except asyncpg.UniqueViolationError as exc:
            raise InvalidInput(f"tenant '{tenant_id}' already has a key '{key_id}' (or that key)") from exc
        return key

    @outage_is_unavailable
    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._db().fetchrow(
            f"SELECT {_KEY} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )
        return None if row is None else ApiKey(*row)

    @outage_is_unavailable
    async def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        status = await self._db().execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND key_id = $3 AND revoked_at IS NULL",
            time.time(),
            tenant_id,
            key_id,
        )
        return _count(status) == 1

    @outage_is_unavailable
    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._db().fetch(
            f"SELECT {_KEY} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id", tenant_id
        )
        return [ApiKey(*row) for row in rows]

    # flows
    @outage_is_unavailable
    async def save_flow_version(self, tenant_id: str, document: dict[str, Any]) -> FlowVersion:
        flow_id, version = document.get("flow_id"), document.get("version")
        if not isinstance(flow_id, str) or not isinstance(version, str):
            raise InvalidInput("a flow document needs a string flow_id and version")
        body = encode_json(document, "flow document", canonical=True)
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO flow_versions ({_FLOW}) VALUES ($1, $2, $3, $4, 'draft', $5, NULL)"
                f" ON CONFLICT (tenant_id, flow_id, version) DO NOTHING RETURNING {_FLOW}",
                tenant_id,
                flow_id,
                version,
                body,
                time.time(),
            )
            if row is not None:
                return _flow(row)
            # jsonb equality ignores key order, so the same document re-saved compares equal
            row = await conn.fetchrow(
                f"SELECT {_FLOW}, document = $4 AS same FROM flow_versions WHERE {_VERSION}",
                tenant_id,
                flow_id,
                version,
                body,
            )
        if not row["same"]:
            raise VersionExists(
                f"flow '{flow_id}' version {version} is already stored with other content",
                {"flow_id": flow_id, "version": version},
            )
        return _flow(row)

    @outage_is_unavailable
    async def get_flow_version(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion | None:
        row = await self._db().fetchrow(
            f"SELECT {_FLOW} FROM flow_versions WHERE {_VERSION}", tenant_id, flow_id, version
        )
        return None if row is None else _flow(row)

    @outage_is_unavailable
    async def publish(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion:
        async with self._transaction() as conn:
            # Lock the flow's versions first: two concurrent publishes then run one after the other
            # instead of both demoting nothing and clashing on the one-published index.
            await conn.execute(
                "SELECT 1 FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2 FOR UPDATE",
                tenant_id,
                flow_id,
            )
            await conn.execute(
                "UPDATE flow_versions SET status = 'draft'"
                " WHERE tenant_id = $1 AND flow_id = $2 AND status = 'published' AND version != $3",
                tenant_id,
                flow_id,
                version,
            )
            row = await conn.fetchrow(
                f"UPDATE flow_versions SET status = 'published', published_at = $4 WHERE {_VERSION}"
                f" RETURNING {_FLOW}",
                tenant_id,
                flow_id,
                version,
                time.time(),
            )
            if row is None:
                raise FlowNotFound(
                    f"flow '{flow_id}' has no version {version}", {"flow_id": flow_id, "version": version}
                )
        return _flow(row)

    @outage_is_unavailable
    async def published(self, tenant_id: str, flow_id: str) -> FlowVersion | None:
        row = await self._db().fetchrow(
            f"SELECT {_FLOW} FROM flow_versions"
            " WHERE tenant_id = $1 AND flow_id = $2 AND status = 'published'",
            tenant_id,
            flow_id,
        )
        return None if row is None else _flow(row)

    @outage_is_unavailable
    async def published_version(self, tenant_id: str, flow_id: str) -> str | None:
        version: str | None = await self._db().fetchval(
            "SELECT version FROM flow_versions"
            " WHERE tenant_id = $1 AND flow_id = $2 AND status = 'published'",
            tenant_id,
            flow_id,
        )
        return version

    @outage_is_unavailable
    async def list_flows(self, tenant_id: str) -> list[FlowVersion]:
        rows = await self._db().fetch(
            f"SELECT DISTINCT ON (flow_id) {_FLOW} FROM flow_versions WHERE tenant_id = $1"
            " ORDER BY flow_id, created_at DESC, id DESC",
            tenant_id,
        )
        return [_flow(row) for row in rows]

    @outage_is_unavailable
    async def list_versions(self, tenant_id: str, flow_id: str) -> list[FlowVersion]:
        rows = await self._db().fetch(
            f"SELECT {_FLOW} FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2"
            " ORDER BY created_at, id",
            tenant_id,
            flow_id,
        )
        return [_flow(row) for row in rows]

    @outage_is_unavailable
    async def delete_flow(self, tenant_id: str, flow_id: str) -> bool:
        status = await self._db().execute(
            "DELETE FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2", tenant_id, flow_id
        )
        return _count(status) > 0

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
            f"SELECT reply FROM idempotency WHERE {_CONVERSATION} AND message_id = $3 AND created_at > $4",
            tenant_id,
            conversation_id,
            message_id,
            time.time() - self.idempotency_ttl_s,
        )
        return stored

    @asynccontextmanager
    async def begin_turn(
        self, tenant_id: str, conversation_id: str, message_id: str | None, timeout_s: float
    ) -> AsyncIterator[TurnStart]:
        """This process's queue for the conversation, then one Redis round trip (idempotency record, lock,
        cached context); PostgreSQL only on a cache miss."""
        deadline = time.monotonic() + timeout_s
        async with self._local.hold(tenant_id, conversation_id, timeout_s):
            held, start = await self._begin(
                tenant_id, conversation_id, message_id, max(0.0, deadline - time.monotonic())
            )
            try:
                yield start
            finally:
                if held is not None:
                    await held.release()

    async def _begin(
        self, tenant_id: str, conversation_id: str, message_id: str | None, timeout_s: float
    ) -> tuple[HeldLock | None, TurnStart]:
        """The Redis lock (None when the message was processed already) and what the turn starts from.
        Only the store's own calls map an outage to ``StoreUnavailable``: an ``OSError`` of the turn
        itself (an integration's, say) must stay what it is."""
        try:
            began = await self._parts().begin(tenant_id, conversation_id, message_id, timeout_s)
            held = began.held
            if held is None:
                return None, LoadedTurn(self, reply=orjson.loads(began.reply or b"null"))
            if began.cached is not False:
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
        context = encode_json(write.context, "context")
        events = [encode_json(event, f"events[{i}]") for i, event in enumerate(write.events)]
        reply = None if write.reply is None else encode_json(write.reply, "reply")
        if isinstance(write.timer, Timer) and (write.timer.tenant_id, write.timer.conversation_id) != key:
            raise ValueError(f"the timer of {write.timer.conversation_id!r} in a turn of {key[1]!r}")
        record = (write.message_id, reply) if write.message_id is not None and reply is not None else None
        timer = write.timer
        now = time.time()
        arguments: list[Any] = [
            *key,
            context,
            now,
            events,
            *(record or (None, None)),
            "set" if isinstance(timer, Timer) else "keep" if timer == "keep" else "clear",
            *((timer.due_at, timer.state, timer.run) if isinstance(timer, Timer) else (None, None, None)),
        ]
        if write.expected_version is None:
            version = await self._db().fetchval(_CREATE_TURN, *arguments)
        else:
            version = await self._db().fetchval(_UPDATE_TURN, *arguments, write.expected_version)
        if version is None:
            await self._refresh(*key)  # a stale cached context is how a writer usually loses
            raise _conflict(write)
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
                f" WHERE {_CONVERSATION} AND context IS NOT NULL RETURNING version",
                tenant_id,
                conversation_id,
                time.time(),
            )
            await conn.execute(f"DELETE FROM timers WHERE {_CONVERSATION}", tenant_id, conversation_id)
        await self._parts().forget(tenant_id, conversation_id, version)
        return version is not None

    @outage_is_unavailable
    async def history(
        self, tenant_id: str, conversation_id: str, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        rows = await self._db().fetch(
            f"SELECT seq, event FROM history WHERE {_CONVERSATION} AND seq < $3 ORDER BY seq DESC LIMIT $4",
            tenant_id,
            conversation_id,
            _MAX_SEQ if before is None else before,
            max(limit, 0),
        )
        return [{**row["event"], "seq": row["seq"]} for row in rows]

    # analytics events
    @outage_is_unavailable
    async def record_events(self, events: list[dict[str, Any]]) -> None:
        tenants: list[str] = []
        types: list[str] = []
        bodies: list[bytes] = []
        for i, event in enumerate(events):
            tenant_id, event_type = event.get("tenant_id"), event.get("type")
            if not isinstance(tenant_id, str) or not isinstance(event_type, str):
                raise UnstorableData(f"events[{i}] needs a string tenant_id and type", {"index": i})
            bodies.append(encode_json(event, f"events[{i}]"))
            tenants.append(tenant_id)
            types.append(event_type)
        if bodies:
            await self._db().execute(
                "INSERT INTO events (tenant_id, type, event) SELECT t, y, e"
                " FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS u(t, y, e, n)"
                " ORDER BY n",
                tenants,
                types,
                bodies,
            )

    @outage_is_unavailable
    async def events(
        self, tenant_id: str, event_type: str | None = None, limit: int = 1000, after: int | None = None
    ) -> list[dict[str, Any]]:
        by_type = "" if event_type is None else " AND type = $4"  # a separate query, so it uses its index
        rows = await self._db().fetch(
            f"SELECT seq, event FROM events WHERE tenant_id = $1 AND seq > $2{by_type} ORDER BY seq LIMIT $3",
            tenant_id,
            after or 0,
            max(limit, 0),
            *(() if event_type is None else (event_type,)),
        )
        return [{**row["event"], "seq": row["seq"]} for row in rows]

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
            f"SELECT {_TIMER} FROM timers WHERE due_at <= $1 ORDER BY due_at LIMIT $2", now, max(limit, 0)
        )
        return [Timer(*row) for row in rows]

    @outage_is_unavailable
    async def claim_timer(self, timer: Timer) -> bool:
        claimed = await self._db().fetchval(
            f"DELETE FROM timers WHERE {_CONVERSATION} AND due_at = $3 AND state = $4 AND run = $5"
            " RETURNING true",
            *_timer_row(timer),
        )
        if claimed:
            await self._parts().unschedule(timer)
        return bool(claimed)

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

    # plumbing
    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("ProductionStore is not open")
        return self._pool

    def _parts(self) -> RedisParts:
        if self._redis is None:
            raise RuntimeError("ProductionStore is not open")
        return self._redis

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._db().acquire() as conn, conn.transaction():
            yield conn


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


# What a turn writes besides the context, as data-modifying CTEs of one statement: they run only when the
# compare-and-set (``written``) returned a row, all in the statement's one implicit transaction.
# $1 tenant, $2 conversation, $3 context, $4 now, $5 events, $6 message id, $7 reply, $8 timer mode
# ('set', 'clear' or 'keep'), $9-$11 the timer's due_at, state and run, ($12 the expected version).
_TURN_WRITES = """
, appended AS (
    INSERT INTO history (tenant_id, conversation_id, event)
    SELECT $1::text, $2::text, e FROM written, unnest($5::jsonb[]) WITH ORDINALITY AS t(e, n) ORDER BY n
), recorded AS (
    INSERT INTO idempotency (tenant_id, conversation_id, message_id, reply, created_at)
    SELECT $1::text, $2::text, $6::text, $7::jsonb, $4::float8 FROM written WHERE $6::text IS NOT NULL
    ON CONFLICT (tenant_id, conversation_id, message_id)
    DO UPDATE SET reply = EXCLUDED.reply, created_at = EXCLUDED.created_at
), timer_set AS (
    INSERT INTO timers (tenant_id, conversation_id, due_at, state, run)
    SELECT $1::text, $2::text, $9::float8, $10::text, $11::text FROM written WHERE $8::text = 'set'
    ON CONFLICT (tenant_id, conversation_id)
    DO UPDATE SET due_at = EXCLUDED.due_at, state = EXCLUDED.state, run = EXCLUDED.run
), timer_cleared AS (
    DELETE FROM timers WHERE tenant_id = $1 AND conversation_id = $2 AND $8::text = 'clear'
    AND EXISTS (SELECT FROM written)
)
SELECT version FROM written
"""
# A reset row (context NULL) counts as absent but keeps its version, so versions never repeat.
_CREATE_TURN = (
    "WITH written AS (INSERT INTO conversations (tenant_id, conversation_id, context, version, updated_at)"
    " VALUES ($1, $2, $3, 1, $4) ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET"
    " context = EXCLUDED.context, version = conversations.version + 1, updated_at = EXCLUDED.updated_at"
    " WHERE conversations.context IS NULL RETURNING version)" + _TURN_WRITES
)
_UPDATE_TURN = (
    "WITH written AS (UPDATE conversations SET context = $3, version = version + 1, updated_at = $4"
    " WHERE tenant_id = $1 AND conversation_id = $2 AND version = $12 AND context IS NOT NULL"
    " RETURNING version)" + _TURN_WRITES
)


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


def _tenant(row: asyncpg.Record) -> Tenant:
    tenant_id, default_flow, plugins, webhook = row
    return Tenant(tenant_id, default_flow, None if plugins is None else tuple(plugins), webhook)


def _flow(row: asyncpg.Record) -> FlowVersion:
    return FlowVersion(*(row[i] for i in range(7)))


def _timer_row(timer: Timer) -> tuple[str, str, float, str, str]:
    return (timer.tenant_id, timer.conversation_id, timer.due_at, timer.state, timer.run)


def _conflict(write: TurnWrite) -> ConcurrentUpdate:
    return ConcurrentUpdate(
        f"conversation '{write.conversation_id}' changed since version {write.expected_version}",
        {"conversation_id": write.conversation_id, "expected_version": write.expected_version},
    )

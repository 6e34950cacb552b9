"""The production store (PostgreSQL + Redis): the whole store contract, plus what only it has.

PostgreSQL and Redis must run on 127.0.0.1 (``.ci/run`` starts them): when they do not, these tests fail
loudly instead of skipping, so a CI run without them cannot pass by testing nothing. Each test gets its own
schema and key prefix, dropped and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.postgres_schema import MIGRATIONS
from tests.production_kit import POSTGRES_URI, REDIS_URL, delete_keys, fresh_backing
from tests.store_contract import (
    OLD_EVENTS,
    TURN_EVENT,
    A,
    OpenStore,
    StoreContract,
    old_events_moved,
    timer,
    turn,
)

OpenProduction = Callable[..., Awaitable[ProductionStore]]


@pytest.fixture
async def backing() -> AsyncIterator[tuple[str, str]]:
    """A fresh (schema, key prefix), removed at the end."""
    async with fresh_backing("t") as name:
        yield name, name


@pytest.fixture
async def open_production(backing: tuple[str, str]) -> AsyncIterator[OpenProduction]:
    schema, prefix = backing
    opened: list[ProductionStore] = []

    async def open_production(**options: float) -> ProductionStore:
        store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=schema, key_prefix=prefix, **options)
        await store.open()
        opened.append(store)
        return store

    yield open_production
    for store in opened:
        await store.close()


class TestProductionStore(StoreContract):
    @pytest.fixture
    def open_store(self, open_production: OpenProduction) -> OpenStore:
        async def open_store() -> Store:
            return await open_production()

        return open_store


async def schema_versions(schema: str) -> list[int]:
    conn = await asyncpg.connect(POSTGRES_URI)
    try:
        return [row[0] for row in await conn.fetch(f"SELECT version FROM {schema}.schema_version ORDER BY 1")]
    finally:
        await conn.close()


async def test_migrates_an_empty_database_once(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    schema, _ = backing
    first = await open_production()
    await first.commit(turn(None))
    for _ in range(2):
        await open_production()
    assert await schema_versions(schema) == list(range(1, len(MIGRATIONS) + 1))
    conversation = await first.load(A, "c1")
    assert conversation is not None
    assert conversation.version == 1


async def test_two_stores_migrating_together_migrate_once(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    schema, _ = backing
    stores = await asyncio.gather(*(open_production() for _ in range(4)))
    assert all([await store.ready() for store in stores])
    assert await schema_versions(schema) == list(range(1, len(MIGRATIONS) + 1))


async def test_losing_every_redis_key_loses_no_conversation(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    _, prefix = backing
    store = await open_production()
    await store.commit(turn(None, context={"n": 1}, message_id="m1", reply={"r": 1}, timer=timer(due_at=5.0)))
    await store.commit(turn(1, context={"n": 2}))
    await store.commit(turn(None, conversation="c2"))
    await store.reset(A, "c2")
    assert await delete_keys(prefix) > 0
    conversation = await store.load(A, "c1")
    assert conversation is not None
    assert (conversation.context, conversation.version) == ({"n": 2}, 2)
    assert await store.load(A, "c2") is None
    assert await store.reply_for(A, "c1", "m1") == {"r": 1}
    assert await store.due_timers(now=10.0) == [timer(due_at=5.0)]
    assert await store.commit(turn(2, context={"n": 3})) == 3


async def test_a_stale_cached_context_heals_after_one_conflict(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    store = await open_production()
    await store.commit(turn(None, context={"n": 1}))
    conn = await asyncpg.connect(POSTGRES_URI, server_settings={"search_path": backing[0]})
    try:  # a process that committed in PostgreSQL and died before updating Redis
        await conn.execute("UPDATE conversations SET version = 2, context = '{\"n\": 2}'")
    finally:
        await conn.close()
    stale = await store.load(A, "c1")
    assert stale is not None
    assert stale.version == 1
    with pytest.raises(Exception, match="changed since version 1"):
        await store.commit(turn(1, context={"n": 9}))
    fresh = await store.load(A, "c1")
    assert fresh is not None
    assert (fresh.context, fresh.version) == ({"n": 2}, 2)


async def test_a_crashed_holders_lock_expires_after_its_lease(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    _, prefix = backing
    store = await open_production(lock_lease_s=0.3)
    client = Redis.from_url(REDIS_URL)
    try:  # a holder that took the lock and died: nobody extends or releases it
        assert await client.set(f"{prefix}:lock:{{{A}:c1}}", "dead", nx=True, px=300)
    finally:
        await client.aclose()
    started = time.monotonic()
    async with store.lock(A, "c1", timeout_s=2):
        waited = time.monotonic() - started
    assert 0.1 < waited < 1.0


async def test_a_held_lock_outlives_its_lease(open_production: OpenProduction) -> None:
    first, second = await open_production(lock_lease_s=0.15), await open_production(lock_lease_s=0.15)
    async with first.lock(A, "c1", timeout_s=1):
        with pytest.raises(Exception, match="busy"):
            async with second.lock(A, "c1", timeout_s=0.5):  # three leases: kept alive by its holder
                pass
    async with second.lock(A, "c1", timeout_s=0.1):
        pass


async def test_a_timer_is_claimed_once_and_found_after_redis_lost_it(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    _, prefix = backing
    first, second = await open_production(), await open_production()
    await first.commit(turn(None, timer=timer(due_at=5.0)))
    await first.commit(turn(None, conversation="c2", timer=timer(due_at=6.0, conversation="c2")))
    assert await first.due_timers(now=10.0) == [timer(due_at=5.0), timer(due_at=6.0, conversation="c2")]
    assert await second.due_timers(now=1.0) == []  # nothing due: answered by Redis alone
    results = await asyncio.gather(
        first.claim_timer(timer(due_at=5.0)), second.claim_timer(timer(due_at=5.0))
    )
    assert sorted(results) == [False, True]
    await delete_keys(prefix)  # "restart" without Redis persistence
    reopened = await open_production()
    assert await reopened.due_timers(now=10.0) == [timer(due_at=6.0, conversation="c2")]
    late = timer(due_at=6.0, conversation="c2")
    results = await asyncio.gather(first.claim_timer(late), reopened.claim_timer(late))
    assert sorted(results) == [False, True]
    assert await second.due_timers(now=10.0) == []


async def test_a_claimed_timer_is_claimable_again_once_its_lease_ends(
    open_production: OpenProduction,
) -> None:
    """A claimer that died before its turn committed: PostgreSQL keeps the timer, the schedule makes it due
    again when the lease ends, and another process claims it."""
    died, survivor = await open_production(timer_lease_s=0.3), await open_production(timer_lease_s=0.3)
    await died.commit(turn(None, timer=timer(due_at=5.0)))
    assert await died.claim_timer(timer(due_at=5.0))
    assert await survivor.due_timers(now=10.0) == []
    assert not await survivor.claim_timer(timer(due_at=5.0))
    await died.close()
    for _ in range(100):  # bounded: the lease is 0.3 s
        if await survivor.due_timers(now=10.0):
            break
        await asyncio.sleep(0.02)
    assert await survivor.due_timers(now=10.0) == [timer(due_at=5.0)]
    assert await survivor.claim_timer(timer(due_at=5.0))
    await survivor.commit(turn(1, timer=None))  # its turn committed: the timer is done
    assert await survivor.due_timers(now=10.0) == []


async def test_a_closed_store_is_not_ready_and_refuses_work() -> None:
    store = ProductionStore(POSTGRES_URI, REDIS_URL)
    assert not await store.ready()
    with pytest.raises(RuntimeError, match="not open"):
        await store.load(A, "c1")


def test_names_that_would_break_keys_or_sql_are_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        ProductionStore(POSTGRES_URI, REDIS_URL, schema="x; DROP TABLE y")
    with pytest.raises(ValueError, match="braces"):
        ProductionStore(POSTGRES_URI, REDIS_URL, key_prefix="mcp{1}")


class RoundTrips:
    """Counts what a store sends: Redis round trips (commands and pipelines) and PostgreSQL statements.

    A spy on the store's own clients, which still talk to the real servers."""

    def __init__(self, store: ProductionStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.redis = 0
        self.postgres = 0
        client = store._redis_client

        def counted(method: Callable[..., Any], kind: str) -> Callable[..., Any]:
            async def call(*args: Any, **kwargs: Any) -> Any:
                setattr(self, kind, getattr(self, kind) + 1)
                return await method(*args, **kwargs)

            return call

        monkeypatch.setattr(client, "execute_command", counted(client.execute_command, "redis"))
        monkeypatch.setattr(Pipeline, "execute", counted(Pipeline.execute, "redis"))
        for name in ("fetchval", "fetchrow", "fetch", "execute"):  # pools and transactions use these too
            method = getattr(asyncpg.Connection, name)
            monkeypatch.setattr(asyncpg.Connection, name, counted(method, "postgres"))

    def take(self) -> tuple[int, int]:
        counts, self.redis, self.postgres = (self.redis, self.postgres), 0, 0
        return counts


async def test_a_turn_is_two_redis_round_trips_and_one_statement(
    open_production: OpenProduction, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_production()
    await store.commit(turn(None, context={"n": 1}))
    await store.load(A, "c1")  # PURGE_INTERVAL_S: the first commit of a process also purged old records
    trips = RoundTrips(store, monkeypatch)
    async with store.begin_turn(A, "c1", "m2", timeout_s=1) as start:
        assert trips.take() == (1, 0)  # idempotency record, lock and context: one script
        await start.commit(turn(1, context={"n": 2}, message_id="m2", reply={"r": 2}, events=[{"type": "e"}]))
        assert trips.take() == (1, 1)  # one statement; the mirror releases the lock
    assert trips.take() == (0, 0)
    async with store.begin_turn(A, "c1", "m2", timeout_s=1) as start:  # a retry: Redis alone answers
        assert start.reply == {"r": 2}
    assert trips.take() == (1, 0)
    async with store.begin_turn(A, "c1", None, timeout_s=1) as start:  # with a timer: still one round trip
        await start.commit(turn(2, context={"n": 3}, timer=timer(due_at=5.0)))
    assert trips.take() == (2, 1)
    assert await store.due_timers(now=10.0) == [timer(due_at=5.0)]


async def test_a_retried_message_is_answered_after_redis_lost_everything(
    backing: tuple[str, str], open_production: OpenProduction, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, prefix = backing
    store = await open_production()
    async with store.begin_turn(A, "c1", "m1", timeout_s=1) as start:
        await start.commit(turn(None, context={"n": 1}, message_id="m1", reply={"r": 1}))
    await delete_keys(prefix)
    trips = RoundTrips(store, monkeypatch)
    async with store.begin_turn(A, "c1", "m1", timeout_s=1) as start:
        assert start.reply == {"r": 1}  # from PostgreSQL, with the context, in one query
    assert trips.take() == (3, 1)  # begin, refill (context and records together), release
    async with store.begin_turn(A, "c1", "m1", timeout_s=1) as start:
        assert start.reply == {"r": 1}  # refilled: Redis alone answers again
    assert trips.take() == (1, 0)
    async with store.begin_turn(A, "c1", "m2", timeout_s=1) as start:  # a new message: the cached context
        assert start.reply is None
        assert start.conversation is not None
        assert start.conversation.context == {"n": 1}
    assert trips.take() == (2, 0)


async def test_the_events_table_moves_into_history_without_its_copies(
    backing: tuple[str, str], open_production: OpenProduction
) -> None:
    """A schema from before events were written once, with ``OLD_EVENTS``, migrates without a copy."""
    schema, _ = backing
    conn = await asyncpg.connect(POSTGRES_URI, server_settings={"search_path": schema})
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.schema_version (version integer PRIMARY KEY)")
        for number, script in enumerate(MIGRATIONS[:-1], start=1):
            await conn.execute(script)
            await conn.execute(f"INSERT INTO {schema}.schema_version (version) VALUES ($1)", number)
        await conn.execute(
            "INSERT INTO history (tenant_id, conversation_id, event) VALUES ($1, 'c1', $2)",
            A,
            TURN_EVENT.decode(),
        )
        for kind, body in OLD_EVENTS:
            await conn.execute(
                "INSERT INTO events (tenant_id, type, event) VALUES ($1, $2, $3)", A, kind, body.decode()
            )
    finally:
        await conn.close()
    await old_events_moved(await open_production())

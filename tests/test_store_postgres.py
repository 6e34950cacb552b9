"""The production store (PostgreSQL + Redis): the whole store contract, plus what only it has.

PostgreSQL and Redis must run on 127.0.0.1 (``.ci/run`` starts them): when they do not, these tests fail
loudly instead of skipping, so a CI run without them cannot pass by testing nothing. Each test gets its own
schema and key prefix, dropped and deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis

from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.postgres_schema import MIGRATIONS
from tests.production_kit import POSTGRES_URI, REDIS_URL, delete_keys, fresh_backing
from tests.store_contract import A, OpenStore, StoreContract, timer, turn

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

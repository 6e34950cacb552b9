"""The embedded SQLite store: the whole store contract, plus what only a file-backed store has."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_engine.errors import ConversationBusy
from mcp_engine.store.base import Store
from mcp_engine.store.local_locks import ConversationLocks
from mcp_engine.store.sqlite import CHECKPOINT_EVERY, PURGE_INTERVAL_S, SQLiteStore
from mcp_engine.store.sqlite_schema import MIGRATIONS, statements
from tests import store_contract  # the events table's migration: its rows, what they become
from tests.store_contract import A, OpenStore, StoreContract, timer, turn


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    async def open_store(self, tmp_path: Path) -> AsyncIterator[OpenStore]:
        opened: list[SQLiteStore] = []

        async def open_store() -> Store:
            store = SQLiteStore(str(tmp_path / "engine.db"))
            await store.open()
            opened.append(store)
            return store

        yield open_store
        for store in opened:
            await store.close()


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, Clock]]:
    clock = Clock()
    store = SQLiteStore(str(tmp_path / "engine.db"), idempotency_ttl_s=60, clock=clock)
    await store.open()
    yield store, clock
    await store.close()


def query(path: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


async def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = str(tmp_path / "engine.db")
    for _ in range(3):
        store = SQLiteStore(path)
        await store.open()
        await store.close()
    assert query(path, "PRAGMA journal_mode") == [("wal",)]
    assert query(path, "SELECT version FROM schema_version") == [(n,) for n in range(1, len(MIGRATIONS) + 1)]


def test_statements_splits_scripts_and_refuses_an_unfinished_one() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';');\n-- note\nCREATE INDEX i ON a (x);\n"
    assert list(statements(script)) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "-- note\nCREATE INDEX i ON a (x);",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        list(statements("CREATE TABLE b (x TEXT)"))


async def test_idempotency_records_expire_after_the_ttl(clocked: tuple[SQLiteStore, Clock]) -> None:
    store, clock = clocked
    await store.commit(turn(None, message_id="m1", reply={"r": 1}))
    clock.now += 59
    assert await store.reply_for(A, "c1", "m1") == {"r": 1}
    clock.now += 2
    assert await store.reply_for(A, "c1", "m1") is None
    clock.now += PURGE_INTERVAL_S
    await store.commit(turn(1, message_id="m2", reply={"r": 2}))  # has what expired purged, in the background
    await store.settle()
    assert query(store.path, "SELECT message_id FROM idempotency") == [("m2",)]


async def test_a_reprocessed_message_replaces_its_expired_record(clocked: tuple[SQLiteStore, Clock]) -> None:
    store, clock = clocked
    await store.commit(turn(None, message_id="m1", reply={"r": 1}))
    clock.now += 61
    await store.commit(turn(1, message_id="m1", reply={"r": 2}))
    assert await store.reply_for(A, "c1", "m1") == {"r": 2}


async def test_a_closed_store_is_not_ready_and_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "engine.db"))
    assert not await store.ready()
    with pytest.raises(RuntimeError, match="not open"):
        await store.load(A, "c1")
    with pytest.raises(RuntimeError, match="not open"):
        await store.commit(turn(None))


async def test_a_turn_waits_for_a_busy_file_without_holding_the_loop(tmp_path: Path) -> None:
    """Another process writing the file: the turn's commit (run on the loop's thread) sleeps and tries
    again, and the loop goes on meanwhile; once the file is free the commit lands."""
    store = SQLiteStore(str(tmp_path / "engine.db"))
    await store.open()
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        commit = asyncio.create_task(store.commit(turn(None)))
        for _ in range(20):  # a loop held in SQLite's busy handler would have failed the commit by now
            await asyncio.sleep(0.005)
        assert not commit.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(commit, 5) == 1
        assert (await store.load(A, "c1")) is not None
    finally:
        other.close()
        await store.close()


async def test_a_file_busy_past_the_busy_timeout_fails_the_commit_and_writes_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "engine.db"), busy_timeout_ms=50)
    await store.open()
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store.commit(turn(None))
        other.execute("ROLLBACK")
        assert await store.load(A, "c1") is None
        assert await store.commit(turn(None)) == 1
    finally:
        other.close()
        await store.close()


async def test_the_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    """The loop's connection never checkpoints (it may fsync); every CHECKPOINT_EVERY turns the writer's
    thread does, so the turns reach the database file and the WAL does not grow without end."""
    store = SQLiteStore(str(tmp_path / "engine.db"))
    await store.open()
    context = {"current_state": "start", "slots": {"note": "x" * 2000}}
    try:
        for n in range(CHECKPOINT_EVERY - 1):
            await store.commit(turn(None, conversation=f"c{n}", context=context))
        await store.settle()
        before = Path(store.path).stat().st_size  # the WAL holds the turns: the file is the schema's
        await store.commit(turn(None, conversation="last", context=context))
        await store.settle()
        assert Path(store.path).stat().st_size > before + (CHECKPOINT_EVERY - 1) * 2000
        assert query(store.path, "SELECT count(*) FROM conversations") == [(CHECKPOINT_EVERY,)]
    finally:
        await store.close()


async def test_event_queries_read_the_tenants_index_in_order(tmp_path: Path) -> None:
    """By type too: no per-type index (each turn would write one more page per kind of event), but no
    table scan and no sort either."""
    store = SQLiteStore(str(tmp_path / "engine.db"))
    await store.open()
    await store.close()
    indexes = query(store.path, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name='history'")
    assert sorted(name for (name,) in indexes) == ["history_by_conversation", "history_by_tenant"]
    base = "SELECT seq, event FROM history WHERE tenant_id = 'a' AND seq > 0{} ORDER BY seq LIMIT 10"
    for sql in (base.format(""), base.format(" AND type = 'message_in'")):
        plan = " ".join(str(row[-1]) for row in query(store.path, f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX history_by_tenant" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


async def test_locks_are_dropped_when_unused() -> None:
    locks = ConversationLocks()
    async with locks.hold(A, "c1", 1), locks.hold(A, "c2", 1):
        assert len(locks) == 2
        with pytest.raises(ConversationBusy):
            async with locks.hold(A, "c1", 0):
                pass
        assert len(locks) == 2
    assert len(locks) == 0

    async def waiter() -> None:
        async with locks.hold(A, "c1", 5):
            await asyncio.sleep(0)

    async with locks.hold(A, "c1", 1):
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        assert len(locks) == 1
    await task
    assert len(locks) == 0


async def test_a_claimed_timer_is_claimable_again_once_its_lease_ends(
    clocked: tuple[SQLiteStore, Clock],
) -> None:
    """A claimer that died before its turn committed leaves the timer to the next claimer."""
    store, clock = clocked
    await store.commit(turn(None, timer=timer(run="r1")))
    assert await store.claim_timer(timer(run="r1"))
    clock.now += store.timer_lease_s - 1
    assert await store.due_timers(now=1e9) == []
    assert not await store.claim_timer(timer(run="r1"))
    clock.now += 1
    assert await store.due_timers(now=1e9) == [timer(run="r1")]
    assert await store.claim_timer(timer(run="r1"))
    assert not await store.claim_timer(timer(run="r1"))


async def test_the_events_table_moves_into_history_without_its_copies(tmp_path: Path) -> None:
    """A file from before events were written once, with ``OLD_EVENTS``, migrates without a copy."""
    path = str(tmp_path / "engine.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
    events_once = next(n for n, script in enumerate(MIGRATIONS) if "DROP TABLE events" in script)
    for number, script in enumerate(MIGRATIONS[:events_once], start=1):
        for statement in statements(script):
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    db.execute(
        "INSERT INTO history (tenant_id, conversation_id, event) VALUES (?, 'c1', ?)",
        (A, store_contract.TURN_EVENT),
    )
    db.executemany(
        "INSERT INTO events (tenant_id, type, event) VALUES (?, ?, ?)",
        [(A, *row) for row in store_contract.OLD_EVENTS],
    )
    db.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        await store_contract.old_events_moved(store)
    finally:
        await store.close()

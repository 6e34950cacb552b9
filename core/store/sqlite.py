"""The embedded store: one SQLite file holds tenants, flows, conversations, history (which also serves
the analytics event queries: every event is written once), idempotency records, timers and experiments
(``sqlite_experiments``); per-conversation locks are in-process asyncio locks.

Why it is built this way:
- the turn's own statements (its context read, its idempotency check, its commit, the catalogue stamp)
  run on the event loop's thread, on a connection of their own: each takes microseconds, less than the
  hop to a thread and back (and the GIL hand-overs each way) costs. The loop never waits for the file's
  lock there: a busy file is tried again after a short sleep, up to ``busy_timeout``. The WAL is
  checkpointed in the writer's thread, never on the loop;
- one connection writes everything else, behind an asyncio lock, every write one ``BEGIN IMMEDIATE``
  transaction: coroutines sharing a connection would otherwise share (and commit) each other's transactions;
- another connection reads the rest (listings, history, analytics, whose size has no bound) in its thread,
  so a long read never holds the loop (WAL mode: a read never sees a write in progress nor queues behind one);
- a second engine on the same file waits for the file's write lock (``busy_timeout``) instead of failing.
  The in-process locks only order the turns of one process; across processes the compare-and-set on the
  conversation's version and the lease of a claimed timer keep the data right.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import aiosqlite
import orjson

from mcp_engine.errors import ConcurrentUpdate, FlowNotFound, InvalidInput, UnstorableData, VersionExists
from mcp_engine.runtime.breaker import LocalBreakerStore
from mcp_engine.security.grants import Grants
from mcp_engine.store.base import (
    ApiKey,
    Conversation,
    FlowVersion,
    Tenant,
    Timer,
    TurnStart,
    TurnWrite,
    begin_turn_in_steps,
    encode_events,
    encode_json,
)
from mcp_engine.store.local_locks import ConversationLocks
from mcp_engine.store.run_tally import RunTally, tally_runs
from mcp_engine.store.sqlite_experiments import ExperimentRows, count_runs
from mcp_engine.store.sqlite_outbound import DeliveryRows
from mcp_engine.store.sqlite_schema import migrate

DAY_S = 24 * 3600.0
PURGE_INTERVAL_S = 300.0  # how often a commit also has expired idempotency records deleted
CHECKPOINT_EVERY = 200  # turns committed between two WAL checkpoints (SQLite's own default is ~1000 pages)
TIMER_LEASE_S = 60.0  # how long a claimed timer is its claimer's before another process may fire it
_FLOW = "tenant_id, flow_id, version, document, status, created_at, published_at"
_TIMER = "tenant_id, conversation_id, due_at, state, run"
_KEY = "key_id, tenant_id, created_at, revoked_at"
_VERSION = "tenant_id = ? AND flow_id = ? AND version = ?"
_CONVERSATION = "tenant_id = ? AND conversation_id = ?"
_MAX_SEQ = 2**63 - 1
_Params = tuple[Any, ...]
T = TypeVar("T")
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
log = logging.getLogger(__name__)


class SQLiteStore(ExperimentRows, DeliveryRows):
    """The ``Store`` on one SQLite file (``MCP_SQLITE_PATH``): the engine's default with no configuration."""

    name = "sqlite"

    def __init__(
        self,
        path: str = "./mcp_engine.db",
        *,
        idempotency_ttl_s: float = DAY_S,
        busy_timeout_ms: int = 5000,
        clock: Callable[[], float] = time.time,
        timer_lease_s: float = TIMER_LEASE_S,
    ) -> None:
        self.path = path
        self.idempotency_ttl_s = idempotency_ttl_s
        self.timer_lease_s = timer_lease_s
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._here: sqlite3.Connection | None = None  # the loop thread's: the turn's statements
        self._write_lock = asyncio.Lock()
        self._locks = ConversationLocks()
        # Turns' commits queue here, each batch one transaction; other reads, each batch one hop to a thread.
        self._commits = _Batches(self._run_commits)
        self._reads = _Batches(self._run_reads)
        self._next_purge = 0.0
        self._uncheckpointed = 0
        self._chores: set[asyncio.Task[None]] = set()  # checkpoints and purges, in the writer's thread
        self._breakers = LocalBreakerStore()

    async def open(self) -> None:
        """Connect and migrate; a no-op when already open."""
        if self._writer is not None:
            return
        writer = await self._connect()
        await writer.execute("PRAGMA journal_mode=WAL")
        await migrate(writer)
        self._writer, self._reader = writer, await self._connect()
        self._here = sqlite3.connect(self.path, isolation_level=None)
        self._here.execute("PRAGMA busy_timeout = 0")  # the loop never sleeps in SQLite: see _on_loop
        self._here.execute("PRAGMA synchronous = NORMAL")
        self._here.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run in the writer's thread

    async def settle(self) -> None:
        """Until the housekeeping started so far (WAL checkpoints, purges) is done."""
        while self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)

    async def close(self) -> None:
        await self.settle()
        if self._here is not None:
            self._here.close()
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._writer = self._reader = self._here = None

    async def ready(self) -> bool:
        if self._reader is None:
            return False
        try:
            await self._reader.execute_fetchall("SELECT 1")
        except (sqlite3.Error, ValueError):
            return False
        return True

    def breaker_store(self) -> LocalBreakerStore:
        """One engine process per file: its breakers live in that process."""
        return self._breakers

    # tenants
    async def put_tenant(self, tenant: Tenant) -> None:
        plugins = tenant.enabled_plugins
        row = (
            tenant.tenant_id,
            tenant.default_flow,
            None if plugins is None else encode_json(list(plugins), "enabled_plugins"),
            tenant.outbound_webhook,
            _grants_json(tenant),
            tenant.webhook_secret,
        )
        async with self._transaction() as db:
            await _run(
                db,
                "INSERT OR REPLACE INTO tenants (tenant_id, default_flow, enabled_plugins,"
                " outbound_webhook, grants, webhook_secret) VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        rows = await self._read(
            "SELECT default_flow, enabled_plugins, outbound_webhook, grants, webhook_secret FROM tenants"
            " WHERE tenant_id = ?",
            (tenant_id,),
        )
        if not rows:
            return None
        return _tenant((tenant_id, *rows[0]))

    async def list_tenants(self) -> list[Tenant]:
        rows = await self._read(
            "SELECT tenant_id, default_flow, enabled_plugins, outbound_webhook, grants, webhook_secret"
            " FROM tenants ORDER BY tenant_id",
            (),
        )
        return [_tenant(row) for row in rows]

    # API keys
    async def put_api_key(self, tenant_id: str, key_id: str, key_hash: str) -> ApiKey:
        key = ApiKey(key_id, tenant_id, self._clock())
        try:
            async with self._transaction() as db:
                await _run(
                    db,
                    "INSERT INTO api_keys (tenant_id, key_id, key_hash, created_at) VALUES (?, ?, ?, ?)",
                    (tenant_id, key_id, key_hash, key.created_at),
                )
        except sqlite3.IntegrityError as exc:
            raise InvalidInput(f"tenant '{tenant_id}' already has a key '{key_id}' (or that key)") from exc
        return key

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        rows = await self._read(
            f"SELECT {_KEY} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)
        )
        return ApiKey(*rows[0]) if rows else None

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> bool:
        async with self._transaction() as db:
            revoked = await _run(
                db,
                "UPDATE api_keys SET revoked_at = ?"
                " WHERE tenant_id = ? AND key_id = ? AND revoked_at IS NULL",
                (self._clock(), tenant_id, key_id),
            )
        return revoked == 1

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._read(
            f"SELECT {_KEY} FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id", (tenant_id,)
        )
        return [ApiKey(*row) for row in rows]

    # flows
    async def save_flow_version(self, tenant_id: str, document: dict[str, Any]) -> FlowVersion:
        flow_id, version = document.get("flow_id"), document.get("version")
        if not isinstance(flow_id, str) or not isinstance(version, str):
            raise InvalidInput("a flow document needs a string flow_id and version")
        body = encode_json(document, "flow document", canonical=True)
        key = (tenant_id, flow_id, version)
        async with self._transaction() as db:
            rows = list(await db.execute_fetchall(f"SELECT {_FLOW} FROM flow_versions WHERE {_VERSION}", key))
            if rows and rows[0][3] != body:
                raise VersionExists(
                    f"flow '{flow_id}' version {version} is already stored with other content",
                    {"flow_id": flow_id, "version": version},
                )
            if rows:
                return _flow(rows[0])
            row = (*key, body, "draft", self._clock(), None)
            await _run(db, f"INSERT INTO flow_versions ({_FLOW}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        return _flow(row)

    async def get_flow_version(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion | None:
        rows = await self._read(
            f"SELECT {_FLOW} FROM flow_versions WHERE {_VERSION}", (tenant_id, flow_id, version)
        )
        return _flow(rows[0]) if rows else None

    async def publish(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion:
        async with self._transaction() as db:
            await _run(
                db,
                "UPDATE flow_versions SET status = 'draft'"
                " WHERE tenant_id = ? AND flow_id = ? AND status = 'published' AND version != ?",
                (tenant_id, flow_id, version),
            )
            rows = list(
                await db.execute_fetchall(
                    f"UPDATE flow_versions SET status = 'published', published_at = ? WHERE {_VERSION}"
                    f" RETURNING {_FLOW}",
                    (self._clock(), tenant_id, flow_id, version),
                )
            )
            if not rows:
                raise FlowNotFound(
                    f"flow '{flow_id}' has no version {version}", {"flow_id": flow_id, "version": version}
                )
        return _flow(rows[0])

    async def published(self, tenant_id: str, flow_id: str) -> FlowVersion | None:
        rows = await self._read(
            f"SELECT {_FLOW} FROM flow_versions WHERE tenant_id = ? AND flow_id = ? AND status = 'published'",
            (tenant_id, flow_id),
        )
        return _flow(rows[0]) if rows else None

    async def published_version(self, tenant_id: str, flow_id: str) -> str | None:
        """Only the name of the published version (the turn's lookup: no document to decode)."""
        rows = await self._read(
            "SELECT version FROM flow_versions WHERE tenant_id = ? AND flow_id = ? AND status = 'published'",
            (tenant_id, flow_id),
        )
        return str(rows[0][0]) if rows else None

    async def catalogue_stamp(self) -> str | None:
        """The count the schema's triggers keep of changes to tenants, flow versions and experiments."""
        rows = await self._on_loop(_fetch, "SELECT n FROM catalogue_stamp", ())
        return str(rows[0][0])

    async def list_flows(self, tenant_id: str) -> list[FlowVersion]:
        rows = await self._read(
            f"SELECT {_FLOW} FROM (SELECT *, ROW_NUMBER() OVER"
            " (PARTITION BY flow_id ORDER BY created_at DESC, rowid DESC) AS newest"
            " FROM flow_versions WHERE tenant_id = ?) WHERE newest = 1 ORDER BY flow_id",
            (tenant_id,),
        )
        return [_flow(row) for row in rows]

    async def list_versions(self, tenant_id: str, flow_id: str) -> list[FlowVersion]:
        rows = await self._read(
            f"SELECT {_FLOW} FROM flow_versions WHERE tenant_id = ? AND flow_id = ?"
            " ORDER BY created_at, rowid",
            (tenant_id, flow_id),
        )
        return [_flow(row) for row in rows]

    async def delete_flow(self, tenant_id: str, flow_id: str) -> bool:
        async with self._transaction() as db:
            deleted = await _run(
                db, "DELETE FROM flow_versions WHERE tenant_id = ? AND flow_id = ?", (tenant_id, flow_id)
            )
        return deleted > 0

    # conversations
    async def load(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        rows = await self._on_loop(
            _fetch,
            f"SELECT context, version FROM conversations WHERE {_CONVERSATION} AND context IS NOT NULL",
            (tenant_id, conversation_id),
        )
        if not rows:
            return None
        return Conversation(tenant_id, conversation_id, orjson.loads(rows[0][0]), rows[0][1])

    async def reply_for(self, tenant_id: str, conversation_id: str, message_id: str) -> dict[str, Any] | None:
        rows = await self._on_loop(
            _fetch,
            f"SELECT reply FROM idempotency WHERE {_CONVERSATION} AND message_id = ? AND created_at > ?",
            (tenant_id, conversation_id, message_id, self._clock() - self.idempotency_ttl_s),
        )
        return orjson.loads(rows[0][0]) if rows else None

    async def commit(self, write: TurnWrite) -> int:
        # Everything is encoded before the transaction starts: bad data raises with nothing written.
        key = (write.tenant_id, write.conversation_id)
        context = write.encoded_context
        events = [
            (*key, _type_of(event), body)
            for event, body in zip(write.events, encode_events(write.events), strict=True)
        ]
        reply = None if write.reply is None else encode_json(write.reply, "reply")
        if isinstance(write.timer, Timer) and (write.timer.tenant_id, write.timer.conversation_id) != key:
            raise ValueError(f"the timer of {write.timer.conversation_id!r} in a turn of {key[1]!r}")
        now = self._clock()
        tallies = tally_runs(write.events, key)
        version: int = await self._commits.call((write, key, context, events, tallies, reply, now))
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL_S
            self._chore(self._in_transaction(_purge, now - self.idempotency_ttl_s))
        return version

    async def reset(self, tenant_id: str, conversation_id: str) -> bool:
        key = (tenant_id, conversation_id)
        async with self._transaction() as db:
            changed = await _run(
                db,
                "UPDATE conversations SET context = NULL, version = version + 1, updated_at = ?"
                f" WHERE {_CONVERSATION} AND context IS NOT NULL",
                (self._clock(), *key),
            )
            await _run(db, f"DELETE FROM timers WHERE {_CONVERSATION}", key)
        return changed > 0

    async def history(
        self, tenant_id: str, conversation_id: str, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        rows = await self._read(
            f"SELECT seq, event FROM history WHERE {_CONVERSATION} AND in_history AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (tenant_id, conversation_id, _MAX_SEQ if before is None else before, max(limit, 0)),
        )
        return [{**orjson.loads(event), "seq": seq} for seq, event in rows]

    # analytics events
    async def record_events(self, events: list[dict[str, Any]]) -> None:
        rows: list[_Params] = []
        for i, event in enumerate(events):
            tenant_id, event_type = event.get("tenant_id"), event.get("type")
            if not isinstance(tenant_id, str) or not isinstance(event_type, str):
                raise UnstorableData(f"events[{i}] needs a string tenant_id and type", {"index": i})
            conversation_id = event.get("conversation_id")
            conversation = conversation_id if isinstance(conversation_id, str) else ""
            rows.append((tenant_id, conversation, event_type, encode_json(event, f"events[{i}]")))
        if rows:
            await self._in_transaction(_record_events, rows, tally_runs(events))

    async def events(
        self, tenant_id: str, event_type: str | None = None, limit: int = 1000, after: int | None = None
    ) -> list[dict[str, Any]]:
        by_type = "" if event_type is None else " AND type = ?"  # both read history_by_tenant, in seq order
        rows = await self._read(
            f"SELECT seq, event FROM history WHERE tenant_id = ? AND seq > ?{by_type} ORDER BY seq LIMIT ?",
            (tenant_id, after or 0, *(() if event_type is None else (event_type,)), max(limit, 0)),
        )
        return [{**orjson.loads(event), "seq": seq} for seq, event in rows]

    # timers
    async def due_timers(self, now: float, limit: int = 100) -> list[Timer]:
        rows = await self._read(
            f"SELECT {_TIMER} FROM timers WHERE due_at <= ?"
            " AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY due_at LIMIT ?",
            (now, self._clock(), max(limit, 0)),
        )
        return [Timer(*row) for row in rows]

    async def claim_timer(self, timer: Timer) -> bool:
        now = self._clock()
        async with self._transaction() as db:
            claimed = await _run(
                db,
                f"UPDATE timers SET claimed_until = ? WHERE {_CONVERSATION} AND due_at = ? AND state = ?"
                " AND run = ? AND (claimed_until IS NULL OR claimed_until <= ?)",
                (now + self.timer_lease_s, *_timer_row(timer), now),
            )
        return claimed == 1

    async def drop_timer(self, timer: Timer) -> None:
        async with self._transaction() as db:
            await _run(
                db,
                f"DELETE FROM timers WHERE {_CONVERSATION} AND due_at = ? AND state = ? AND run = ?",
                _timer_row(timer),
            )

    def lock(
        self, tenant_id: str, conversation_id: str, timeout_s: float
    ) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(tenant_id, conversation_id, timeout_s)

    def begin_turn(
        self,
        tenant_id: str,
        conversation_id: str,
        message_id: str | None,
        timeout_s: float,
        *,
        fresh: bool = False,
    ) -> AbstractAsyncContextManager[TurnStart]:
        """``fresh`` changes nothing here: the file is the only copy, read every turn."""
        return begin_turn_in_steps(self, tenant_id, conversation_id, message_id, timeout_s)

    # plumbing
    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)  # autocommit: we BEGIN ourselves
        await db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        await db.execute("PRAGMA synchronous = NORMAL")
        return db

    async def _read(self, sql: str, params: _Params) -> list[sqlite3.Row]:
        if self._reader is None:
            raise RuntimeError("SQLiteStore is not open")
        rows: list[sqlite3.Row] = await self._reads.call((sql, params))
        return rows

    async def _run_reads(self, batch: list[Any]) -> list[tuple[bool, Any]]:
        db = self._reader
        if db is None:
            raise RuntimeError("SQLiteStore is not open")
        results: list[tuple[bool, Any]] = await db._execute(  # type: ignore[no-untyped-call]
            _reads_in_thread, db._conn, batch
        )
        return results

    async def _run_commits(self, batch: list[Any]) -> list[tuple[bool, Any]]:
        """Group commit: the turns that reached their commit while the loop ran other work go in one
        transaction, each in its own savepoint, so one turn's failed compare-and-set fails only that turn."""
        results: list[tuple[bool, Any]] = await self._on_loop(_transact, _commit_turns, (batch,))
        self._uncheckpointed += len(batch)
        if self._uncheckpointed >= CHECKPOINT_EVERY:
            self._uncheckpointed = 0
            self._chore(self._checkpoint())
        return results

    async def _on_loop(self, work: Callable[..., T], *args: Any) -> T:
        """``work(connection, *args)`` on the loop thread's connection. A file another connection is
        writing (another process, this one's writer thread) is tried again after a sleep that doubles
        from 0.5 ms, up to ``busy_timeout``: the loop itself never waits in SQLite's busy handler."""
        delay, waited, budget = 0.0005, 0.0, self._busy_timeout_ms / 1000
        while True:
            db = self._here
            if db is None:
                raise RuntimeError("SQLiteStore is not open")
            try:
                return work(db, *args)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _BUSY or waited >= budget:
                    raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05, max(budget - waited, 0.0))

    def _chore(self, work: Awaitable[None]) -> None:
        """Run ``work`` (a checkpoint, a purge) without the turn waiting for it."""

        async def chore() -> None:
            try:
                await work
            except (sqlite3.Error, ValueError, RuntimeError) as exc:  # closed, busy: the next one will do
                log.warning("embedded store housekeeping failed: %s", exc)

        task = asyncio.get_running_loop().create_task(chore())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _checkpoint(self) -> None:
        """Move the WAL's pages into the database file, in the writer's thread (it may fsync)."""
        db = self._writer
        if db is not None:
            async with self._write_lock:
                await db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def _in_transaction(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(connection, *args)`` as one write transaction in the writer's thread: one thread hop
        for the whole transaction instead of one per statement (BEGIN, each statement, COMMIT), so the
        write lock is held for the time SQLite needs and not for a round trip through the event loop
        per statement. ``work`` is plain sqlite3 code; any exception rolls back and is raised here."""
        db = self._writer
        if db is None:
            raise RuntimeError("SQLiteStore is not open")
        async with self._write_lock:
            # aiosqlite runs every call on the connection's own thread; _execute is how it queues one.
            return await db._execute(  # type: ignore[no-untyped-call]
                _transact, db._conn, work, args
            )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection, committed, or rolled back on any exception."""
        db = self._writer
        if db is None:
            raise RuntimeError("SQLiteStore is not open")
        async with self._write_lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise


async def _run(db: aiosqlite.Connection, sql: str, params: _Params) -> int:
    """Execute one statement; the number of rows it changed."""
    async with db.execute(sql, params) as cursor:
        return cursor.rowcount


class _Batches:
    """Calls queued before their batch runs go together: the reads' batch is one hop to the reader's
    thread (and one GIL hand-over each way) instead of one per read; the commits' is one transaction for
    the turns that reached their commit in the same turn of the loop (or while a busy file was waited
    for). ``run`` takes the queued items and returns ``(ok, result or exception)`` for each, in order."""

    def __init__(self, run: Callable[[list[Any]], Awaitable[list[tuple[bool, Any]]]]) -> None:
        self._run = run
        self._queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def call(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((item, future))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._run([item for item, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), (ok, value) in zip(batch, results, strict=True):
                    if future.done():  # its caller was cancelled
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._draining = None


def _fetch(conn: sqlite3.Connection, sql: str, params: _Params) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _reads_in_thread(conn: sqlite3.Connection, batch: list[tuple[str, _Params]]) -> list[tuple[bool, Any]]:
    results: list[tuple[bool, Any]] = []
    for sql, params in batch:
        try:
            results.append((True, conn.execute(sql, params).fetchall()))
        except Exception as exc:
            results.append((False, exc))
    return results


def _commit_turns(conn: sqlite3.Connection, batch: list[_Params]) -> list[tuple[bool, Any]]:
    if len(batch) == 1:  # the usual case when idle: no savepoint needed, an error rolls back the whole
        return [(True, _commit_turn(conn, *batch[0]))]
    results: list[tuple[bool, Any]] = []
    for args in batch:
        conn.execute("SAVEPOINT turn")
        try:
            results.append((True, _commit_turn(conn, *args)))
        except Exception as exc:
            conn.execute("ROLLBACK TO turn")
            results.append((False, exc))
        conn.execute("RELEASE turn")
    return results


def _transact(conn: sqlite3.Connection, work: Callable[..., Any], args: _Params) -> Any:
    """BEGIN IMMEDIATE, ``work``, COMMIT; ROLLBACK on any exception (plain sqlite3, in one go)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _commit_turn(
    conn: sqlite3.Connection,
    write: TurnWrite,
    key: tuple[str, str],
    context: bytes,
    events: list[_Params],
    tallies: list[RunTally],
    reply: bytes | None,
    now: float,
) -> int:
    """A turn's write, inside one transaction: compare-and-set the context, append the events (their
    only copy) and count an experiment run's, keep the idempotency record, set or clear the timer."""
    version = _compare_and_set(conn, write, key, context, now)
    if events:
        conn.executemany(
            "INSERT INTO history (tenant_id, conversation_id, type, event) VALUES (?, ?, ?, ?)", events
        )
        count_runs(conn, tallies)
    if write.message_id is not None and reply is not None:
        conn.execute(
            "INSERT OR REPLACE INTO idempotency"
            " (tenant_id, conversation_id, message_id, reply, created_at) VALUES (?, ?, ?, ?, ?)",
            (*key, write.message_id, reply, now),
        )
    if isinstance(write.timer, Timer):
        conn.execute(
            f"INSERT OR REPLACE INTO timers ({_TIMER}) VALUES (?, ?, ?, ?, ?)", _timer_row(write.timer)
        )
    elif write.timer is None:
        conn.execute(f"DELETE FROM timers WHERE {_CONVERSATION}", key)
    return version


def _purge(conn: sqlite3.Connection, expired: float) -> None:
    conn.execute("DELETE FROM idempotency WHERE created_at <= ?", (expired,))


def _compare_and_set(
    conn: sqlite3.Connection, write: TurnWrite, key: tuple[str, str], context: bytes, now: float
) -> int:
    """Write the context if its version is still ``expected_version``; a reset row (context NULL) counts
    as absent but keeps its version, so versions never repeat."""
    if write.expected_version is None:
        row = conn.execute(
            f"SELECT version, context IS NOT NULL FROM conversations WHERE {_CONVERSATION}", key
        ).fetchone()
        if row is not None and row[1]:
            raise _conflict(write)
        version = (row[0] if row is not None else 0) + 1
        conn.execute(
            "INSERT OR REPLACE INTO conversations"
            " (tenant_id, conversation_id, context, version, updated_at) VALUES (?, ?, ?, ?, ?)",
            (*key, context, version, now),
        )
        return int(version)
    changed = conn.execute(
        "UPDATE conversations SET context = ?, version = version + 1, updated_at = ?"
        f" WHERE {_CONVERSATION} AND version = ? AND context IS NOT NULL",
        (context, now, *key, write.expected_version),
    ).rowcount
    if changed != 1:
        raise _conflict(write)
    return write.expected_version + 1


def _record_events(conn: sqlite3.Connection, rows: list[_Params], tallies: list[RunTally]) -> None:
    """Events recorded outside a turn: history rows, but none of their conversation's history."""
    conn.executemany(
        "INSERT INTO history (tenant_id, conversation_id, type, event, in_history) VALUES (?, ?, ?, ?, 0)",
        rows,
    )
    count_runs(conn, tallies)


def _type_of(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    return kind if isinstance(kind, str) else None


def _tenant(row: Iterable[Any]) -> Tenant:
    tenant_id, default_flow, plugins, webhook, grants, secret = row
    enabled = None if plugins is None else tuple(orjson.loads(plugins))
    grants_of = Grants.from_json(grants and orjson.loads(grants))
    return Tenant(tenant_id, default_flow, enabled, webhook, grants_of, secret)


def _grants_json(tenant: Tenant) -> bytes | None:
    grants = tenant.grants.to_json()
    return None if grants is None else encode_json(grants, "grants")


def _flow(row: Iterable[Any]) -> FlowVersion:
    tenant_id, flow_id, version, document, status, created_at, published_at = row
    return FlowVersion(tenant_id, flow_id, version, orjson.loads(document), status, created_at, published_at)


def _timer_row(timer: Timer) -> _Params:
    return (timer.tenant_id, timer.conversation_id, timer.due_at, timer.state, timer.run)


def _conflict(write: TurnWrite) -> ConcurrentUpdate:
    return ConcurrentUpdate(
        f"conversation '{write.conversation_id}' changed since version {write.expected_version}",
        {"conversation_id": write.conversation_id, "expected_version": write.expected_version},
    )

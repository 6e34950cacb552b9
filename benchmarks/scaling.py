"""How turn cost and memory grow with the work: history length, published flow versions, compiled flows,
and the bytes an idle conversation costs in SQLite.

- history: conversations with 10, 1,000 and 10,000 history events (rows written straight into the
  store's ``history`` table, as if by earlier turns); the turn never reads history, so cost must stay flat.
- versions: 1, 100 and 10,000 published flow versions in the store (one per flow id, rows written
  straight into ``flow_versions``); the turn looks up only its own flow's published version.
- RSS: the process's resident memory (``/proc/self/status`` VmRSS) before and after validating and
  compiling 1,000 copies of the pizza flow (distinct flow ids), per flow.
- bytes per idle conversation: what N conversations of one turn each add, divided by N: to the SQLite file
  (main file after a WAL checkpoint), to PostgreSQL (every table of the schema with its indexes and TOAST,
  ``pg_total_relation_size``) and to Redis (``MEMORY USAGE`` of every key of the prefix).
Turn costs are mean ms per turn at 1 in flight, median of 3 repetitions.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from redis.asyncio import Redis

from benchmarks.load import POSTGRES_URI, REDIS_URL, SCRIPT, backing
from benchmarks.report import Section, Stats, Target
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
PIZZA: dict[str, Any] = json.loads((ROOT / "examples" / "flows" / "pizza.json").read_text())
CONVERSATIONS = 10  # conversations timed per measurement


async def _engine(path: str, store: Store | None = None) -> ExecutionService:
    engine = ExecutionService(store or SQLiteStore(path))
    await engine.start()
    await engine.catalogue.publish_document(PIZZA, make_default=True)
    return engine


async def _turns(engine: ExecutionService, prefix: str, rounds: int) -> list[float]:
    """Per-turn seconds of ``rounds`` happy paths on each of the conversations ``prefix-0..``."""
    samples = []
    for _ in range(rounds):
        for n in range(CONVERSATIONS):
            for text in SCRIPT:
                started = time.perf_counter()
                await engine.process_message("demo", f"{prefix}-{n}", InboundMessage(text=text))
                samples.append(time.perf_counter() - started)
    return samples


async def _history_cost(path: str, events: int, rounds: int) -> float:
    engine = await _engine(path)
    await _turns(engine, "h", 1)  # the conversations exist
    with sqlite3.connect(path) as db:
        row = orjson.dumps({"type": "message_in", "tenant_id": "demo", "data": {"text": "old"}})
        for n in range(CONVERSATIONS):
            db.executemany(
                "INSERT INTO history (tenant_id, conversation_id, event) VALUES ('demo', ?, ?)",
                ((f"h-{n}", row) for _ in range(events)),
            )
    samples = await _turns(engine, "h", rounds)
    await engine.close()
    return sum(samples) / len(samples)


async def _versions_cost(path: str, versions: int, rounds: int) -> float:
    engine = await _engine(path)
    with sqlite3.connect(path) as db:
        now = time.time()
        rows = []
        for i in range(versions - 1):
            document = orjson.dumps({**PIZZA, "flow_id": f"pizza_{i}"})
            rows.append(("demo", f"pizza_{i}", PIZZA["version"], document, "published", now, now))
        db.executemany("INSERT INTO flow_versions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    await _turns(engine, "v", 1)  # warm: the flow is compiled
    samples = await _turns(engine, "v", rounds)
    await engine.close()
    return sum(samples) / len(samples)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss_per_flow(flows: int) -> tuple[float, float]:
    """(MB for ``flows`` compiled flows, KB per flow)."""
    from mcp_engine.flow.validate import validate_data
    from mcp_engine.registry import default_registry
    from mcp_engine.rulesets import get_backend
    from mcp_engine.runtime.compiled import compile_flow
    from mcp_engine.runtime.services import EngineServices

    registry, services = default_registry(), EngineServices()
    backend = get_backend("python")
    warm = compile_flow(validate_data(PIZZA, registry).raise_for_errors(), registry, backend, services)
    gc.collect()
    before = _rss_bytes()
    compiled = [warm]
    for i in range(flows):
        flow = validate_data({**PIZZA, "flow_id": f"pizza_{i}"}, registry).raise_for_errors()
        compiled.append(compile_flow(flow, registry, backend, services))
    gc.collect()
    grown = _rss_bytes() - before
    for flow in compiled:
        flow.close()
    return grown / 2**20, grown / flows / 1024


async def _idle_conversations(engine: ExecutionService, conversations: int) -> None:
    for n in range(conversations):
        await engine.process_message("demo", f"idle-{n}", InboundMessage(text=SCRIPT[0]))
    await engine.sinks.drain()


async def _sqlite_bytes(path: str, conversations: int) -> float:
    engine = await _engine(path)

    def size() -> int:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return os.path.getsize(path)

    before = size()
    await _idle_conversations(engine, conversations)
    after = size()
    await engine.close()
    return (after - before) / conversations


async def _production_bytes(conversations: int) -> tuple[float, float]:
    """(PostgreSQL bytes, Redis bytes) per idle conversation, on a fresh schema and key prefix."""
    async with backing() as name:
        engine = await _engine("", ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name))
        connection = await asyncpg.connect(POSTGRES_URI)
        client = Redis.from_url(REDIS_URL)

        async def postgres() -> int:
            return int(
                await connection.fetchval(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                    name,
                )
            )

        async def redis() -> int:
            keys = [key async for key in client.scan_iter(match=f"{name}:*", count=1000)]
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key, samples=0)
            return sum(size or 0 for size in await pipe.execute())

        try:
            before = await postgres(), await redis()
            await _idle_conversations(engine, conversations)
            after = await postgres(), await redis()
        finally:
            await client.aclose()
            await connection.close()
            await engine.close()
    return (after[0] - before[0]) / conversations, (after[1] - before[1]) / conversations


def _fresh_process(fn: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _median(fn: Any, repetitions: int) -> Stats:
    return Stats.of([fn() for _ in range(repetitions)])


def run(quick: bool = False) -> Section:
    rounds = repetitions = 1 if quick else 3
    history_sizes = (10, 2_000) if quick else (10, 1_000, 10_000)
    version_counts = (1, 1_000) if quick else (1, 100, 10_000)
    rows: list[list[str]] = []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        counter = iter(range(10**6))

        def fresh() -> str:
            return f"{scratch}/s{next(counter)}.db"

        history = {
            n: _median(lambda n=n: asyncio.run(_history_cost(fresh(), n, rounds)), repetitions)
            for n in history_sizes
        }
        for n, stats in history.items():
            rows.append(
                [f"turn, {n:,} history events", stats.ms(), f"{stats.median / history[10].median:.2f}x"]
            )
        versions = {
            n: _median(lambda n=n: asyncio.run(_versions_cost(fresh(), n, rounds)), repetitions)
            for n in version_counts
        }
        for n, stats in versions.items():
            rows.append(
                [
                    f"turn, {n:,} published flow versions",
                    stats.ms(),
                    f"{stats.median / versions[1].median:.2f}x",
                ]
            )
        flows = 50 if quick else 1_000
        rss = [_fresh_process(_rss_per_flow, flows) for _ in range(repetitions)]  # no reused heap
        rss_mb, per_flow = Stats.of([r[0] for r in rss]), Stats.of([r[1] for r in rss])
        rows.append(
            [
                f"RSS growth, {flows:,} compiled pizza flows",
                f"{rss_mb.median:.1f} MB ({rss_mb.low:.1f}-{rss_mb.high:.1f})",
                f"{per_flow.median:.0f} KB/flow",
            ]
        )
        idle_n = 50 if quick else 1_000
        idle = Stats.of([asyncio.run(_sqlite_bytes(fresh(), idle_n)) for _ in range(repetitions)])
        production = [asyncio.run(_production_bytes(idle_n)) for _ in range(repetitions)]
        postgres, redis = Stats.of([p for p, _ in production]), Stats.of([r for _, r in production])
        for store, stats in (("SQLite", idle), ("PostgreSQL", postgres), ("Redis", redis)):
            rows.append(
                [
                    f"{store} bytes per idle conversation ({idle_n:,} of one turn)",
                    f"{stats.median:,.0f} B ({stats.low:,.0f}-{stats.high:,.0f})",
                    "",
                ]
            )
    ratio = history[history_sizes[-1]].median / history[10].median
    figures.update(
        history_ms={str(k): v.median * 1e3 for k, v in history.items()},
        versions_ms={str(k): v.median * 1e3 for k, v in versions.items()},
        rss_mb_per_compiled_flows={str(flows): rss_mb.median},
        rss_kb_per_flow=per_flow.median,
        sqlite_bytes_per_idle_conversation=idle.median,
        postgres_bytes_per_idle_conversation=postgres.median,
        redis_bytes_per_idle_conversation=redis.median,
        history_ratio_largest_to_10=ratio,
    )
    return Section(
        "Scaling: turn cost vs history and published versions; memory per compiled flow;"
        " bytes per conversation",
        ["what", "measured (median, min-max of 3)", "relative"],
        rows,
        [
            Target(
                f"turn cost at {history_sizes[-1]:,} history events ≤ 1.2x that at 10",
                f"{ratio:.2f}x",
                ratio <= 1.2,
            ),
        ],
        notes=[
            f"turn cost: mean ms per turn, {CONVERSATIONS} conversations x {rounds} happy path(s) of "
            f"{len(SCRIPT)} messages, 1 in flight, fresh store per repetition.",
            "RSS from /proc/self/status VmRSS around validate + compile"
            " of distinct copies of the pizza flow.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

"""The production store (PostgreSQL + Redis) against the embedded one, same engine, same run.

``ExecutionService`` drives the pizza happy path over distinct conversations with 1 and 16 in flight on
each store; the ratio production/embedded is what moving to the shared stores costs per process. Uses
the servers on 127.0.0.1 (``MCP_TEST_POSTGRES_URI`` / ``MCP_TEST_REDIS_URL`` to point elsewhere on this
machine); each run gets its own schema and key prefix, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as redis

from benchmarks.report import Section, Stats, Target
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ("I'd like two large pizzas", "thin crust please", "12 Main Street", "(650) 253-0000", "yes")
POSTGRES_URI = os.environ.get("MCP_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _run(store: Store, conversations: int, in_flight: int) -> tuple[float, list[float]]:
    engine = ExecutionService(store)
    await engine.start()
    document = json.loads((ROOT / "examples" / "flows" / "pizza.json").read_text())
    await engine.publish_flow(document, make_default=True)
    latencies: list[float] = []
    gate = asyncio.Semaphore(in_flight)

    async def converse(n: int) -> None:
        async with gate:
            for text in SCRIPT:
                started = time.perf_counter()
                await engine.process_message("demo", f"c{n}", InboundMessage(text=text, user_id=f"u{n}"))
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(conversations)))
    elapsed = time.perf_counter() - started
    await engine.close()
    return len(latencies) / elapsed, latencies


async def _production(conversations: int, in_flight: int) -> tuple[float, list[float]]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        return await _run(
            ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name), conversations, in_flight
        )
    finally:
        connection = await asyncpg.connect(POSTGRES_URI)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await connection.close()
        client = redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{name}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def _p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def run(quick: bool = False) -> Section:
    conversations = 40 if quick else 200
    rows: list[list[str]] = []
    figures: dict[str, object] = {}
    ratios: dict[int, float] = {}
    for in_flight in (1, 16):
        results: dict[str, list[tuple[float, list[float]]]] = {"embedded": [], "production": []}
        for _ in range(3):
            with tempfile.TemporaryDirectory() as scratch:
                store = SQLiteStore(f"{scratch}/bench.db")
                results["embedded"].append(asyncio.run(_run(store, conversations, in_flight)))
            results["production"].append(asyncio.run(_production(conversations, in_flight)))
        stats = {label: Stats.of([rate for rate, _ in runs]) for label, runs in results.items()}
        ratios[in_flight] = stats["production"].median / stats["embedded"].median
        for label, runs in results.items():
            latencies = [x for _, lat in runs for x in lat]
            rows.append(
                [
                    label,
                    str(in_flight),
                    f"{stats[label].median:,.0f} ({stats[label].low:,.0f}-{stats[label].high:,.0f})",
                    f"{_p(latencies, 0.5):.2f}",
                    f"{_p(latencies, 0.99):.2f}",
                    f"{ratios[in_flight]:.2f}" if label == "production" else "",
                ]
            )
            figures[f"{label}_{in_flight}"] = {
                "turns_per_s": stats[label].median,
                "p50_ms": _p(latencies, 0.5),
                "p99_ms": _p(latencies, 0.99),
            }
    return Section(
        "Production store (PostgreSQL + Redis) vs the embedded SQLite store, same engine, one process",
        ["store", "in flight", "turns/s (median, min-max of 3)", "p50 ms", "p99 ms", "production/embedded"],
        rows,
        [Target("production turns/s reported beside the embedded store", f"{ratios[16]:.2f} at 16", True)],
        notes=[f"{conversations} conversations x {len(SCRIPT)} messages (the pizza happy path) per run."],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

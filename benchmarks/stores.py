"""The production store (PostgreSQL + Redis) against the embedded one, same engine, same run.

``ExecutionService`` drives the pizza happy path over distinct conversations with 1 and 16 in flight on
each store; the ratio production/embedded is what moving to the shared stores costs per process. Uses
the servers on 127.0.0.1 (``MCP_TEST_POSTGRES_URI`` / ``MCP_TEST_REDIS_URL`` to point elsewhere on this
machine); each run gets its own schema and key prefix, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as redis

from benchmarks.load import SCRIPT, Run, compare, pizza_turns
from benchmarks.report import Section, Target
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore

POSTGRES_URI = os.environ.get("MCP_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _production(conversations: int, in_flight: int) -> Run:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        return await pizza_turns(
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


def run(quick: bool = False) -> Section:
    conversations = 40 if quick else 200
    rows: list[list[str]] = []
    figures: dict[str, object] = {}
    ratios: dict[int, float] = {}
    for in_flight in (1, 16):
        runs: dict[str, list[Run]] = {"production": [], "embedded": []}
        for _ in range(3):
            with tempfile.TemporaryDirectory() as scratch:
                store = SQLiteStore(f"{scratch}/bench.db")
                runs["embedded"].append(asyncio.run(pizza_turns(store, conversations, in_flight)))
            runs["production"].append(asyncio.run(_production(conversations, in_flight)))
        level_rows, ratios[in_flight], figures[str(in_flight)] = compare(
            in_flight, runs, "production", "embedded"
        )
        rows += level_rows
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

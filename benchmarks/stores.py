"""The production store (PostgreSQL + Redis) against the embedded one, same engine, same run.

``ExecutionService`` drives the pizza happy path over distinct conversations with 1 and 16 in flight on
each store; the ratio production/embedded is what moving to the shared stores costs per process. Uses
the servers on 127.0.0.1 (``MCP_TEST_POSTGRES_URI`` / ``MCP_TEST_REDIS_URL`` to point elsewhere on this
machine); each run gets its own schema and key prefix, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as redis

from benchmarks.load import SCRIPT, Run, in_process, pizza_turns, sqlite_pizza
from benchmarks.report import Section
from mcp_engine.store.postgres import ProductionStore

POSTGRES_URI = os.environ.get("MCP_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _production(_scratch: str, conversations: int, in_flight: int) -> Run:
    """The engine's pizza turns on a fresh schema and key prefix (the scratch folder is not needed)."""
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
    rows, _ratios, figures = in_process(
        ("production", _production), ("embedded", sqlite_pizza), conversations
    )
    return Section(
        "Production store (PostgreSQL + Redis) vs the embedded SQLite store, same engine, one process",
        ["store", "in flight", "turns/s (median, min-max of 3)", "p50 ms", "p99 ms", "production/embedded"],
        rows,
        [],
        notes=[f"{conversations} conversations x {len(SCRIPT)} messages (the pizza happy path) per run."],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

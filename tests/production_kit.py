"""The PostgreSQL + Redis servers the production-store tests use, and a fresh namespace on them per test.

Fails loudly (no skip) when a server is not running: CI starts both."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from redis.asyncio import Redis

POSTGRES_URI = os.environ.get("MCP_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def delete_keys(prefix: str) -> int:
    """What ``FLUSHALL`` would do to this test's keys (without touching anyone else's)."""
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        return int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()


@asynccontextmanager
async def fresh_backing(tag: str) -> AsyncIterator[str]:
    """A new name to use as both PostgreSQL schema and Redis key prefix; both are removed afterwards."""
    name = f"{tag}_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        connection = await asyncpg.connect(POSTGRES_URI)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await connection.close()
        await delete_keys(name)


@asynccontextmanager
async def store_env(kind: str, tag: str) -> AsyncIterator[dict[str, str]]:
    """What points ``mcp-engine serve`` at a store: nothing for the embedded one (``serve_kit`` gives each
    process its own file unless told otherwise), or a fresh PostgreSQL schema + Redis prefix (production)."""
    if kind == "embedded":
        yield {}
        return
    async with fresh_backing(tag) as name:
        yield {
            "POSTGRES_URI": POSTGRES_URI,
            "REDIS_URL": REDIS_URL,
            "MCP_POSTGRES_SCHEMA": name,
            "MCP_REDIS_PREFIX": name,
        }

"""The ``redis_stream`` event sink on the real Redis (127.0.0.1:6379; fails loudly when it is not running):
events land in the stream, the stream stays capped, and an unreachable Redis never fails a turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from mcp_engine.plugins.sinks.redis_stream import RedisStreamSink, mcp_engine_event_sinks
from mcp_engine.registry import default_registry
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import engine_settings
from tests.production_kit import REDIS_URL, fresh_backing
from tests.serve_kit import free_port
from tests.turnkit import TENANT, flow, msg, on, set_action, wait


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async with fresh_backing("s") as name:
        yield name


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def sink(env: dict[str, str], **config: object) -> RedisStreamSink:
    return RedisStreamSink(RedisStreamSink.Config.model_validate(config), EngineServices(env=env))


def test_the_hook_provides_the_sink_and_the_registry_has_it() -> None:
    assert mcp_engine_event_sinks() == [RedisStreamSink]
    assert default_registry().event_sinks.get("redis_stream") is RedisStreamSink


def test_without_a_redis_url_the_engine_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        sink({})


async def test_events_land_in_the_prefixed_stream_in_order(prefix: str, redis: Redis) -> None:
    stream_sink = sink({"REDIS_URL": REDIS_URL, "MCP_REDIS_PREFIX": prefix})
    assert stream_sink.stream == f"{prefix}:events"
    try:
        await stream_sink.publish(
            [
                {"tenant_id": "t1", "type": "message_in", "conversation_id": "c1", "text": "hi"},
                {"tenant_id": "t1", "type": "run_completed", "conversation_id": "c1"},
            ]
        )
        await stream_sink.publish([])
    finally:
        await stream_sink.close()
    entries = await redis.xrange(f"{prefix}:events")
    assert [fields[b"type"] for _, fields in entries] == [b"message_in", b"run_completed"]
    assert entries[0][1][b"tenant_id"] == b"t1"
    assert orjson.loads(entries[0][1][b"event"])["text"] == "hi"


async def test_the_stream_is_capped_approximately(prefix: str, redis: Redis) -> None:
    stream = f"{prefix}:capped"
    stream_sink = sink({"REDIS_URL": REDIS_URL}, stream=stream, maxlen=100)
    try:
        for batch in range(10):
            await stream_sink.publish(
                [{"tenant_id": "t1", "type": "tick", "n": batch * 100 + i} for i in range(100)]
            )
    finally:
        await stream_sink.close()
    length = await redis.xlen(stream)
    assert 100 <= length < 1000  # MAXLEN ~ trims whole nodes: at least the cap, far less than everything


def counter_flow() -> dict[str, object]:
    return flow(
        "w",
        {"w": wait(on("any_input", "w", actions=[set_action("n", expression="variables.n + 1")]))},
        variables={"n": 0},
    )


async def engine_with(tmp_path: Path, env: dict[str, str]) -> ExecutionService:
    engine = ExecutionService(
        SQLiteStore(str(tmp_path / "engine.db")),
        settings=engine_settings(event_sinks="store,redis_stream"),
        services=EngineServices(env=env),
    )
    await engine.start()
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    return engine


async def test_turns_publish_to_the_stream(tmp_path: Path, prefix: str, redis: Redis) -> None:
    engine = await engine_with(tmp_path, {"REDIS_URL": REDIS_URL, "MCP_REDIS_PREFIX": prefix})
    try:
        for i in range(3):
            await engine.process_message(TENANT, "c1", msg(f"m{i}"))
        await engine.sinks.drain()
        assert engine.sinks.failures == 0
    finally:
        await engine.close()
    types = [fields[b"type"] for _, fields in await redis.xrange(f"{prefix}:events")]
    assert types.count(b"message_in") == 3


async def test_an_unreachable_redis_fails_no_turn(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    engine = await engine_with(tmp_path, {"REDIS_URL": dead})
    try:
        replies = [await engine.process_message(TENANT, "c1", msg(f"m{i}")) for i in range(3)]
        await engine.sinks.drain()
        assert [r["context_updates"]["variables.n"] for r in replies] == [1, 2, 3]
        assert engine.sinks.failures >= 1
        assert [e["type"] for e in await engine.store.events(TENANT, "message_in")] == ["message_in"] * 3
    finally:
        await engine.close()

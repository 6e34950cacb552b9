"""The ``store`` event sink: a turn's events are already in the engine's store (its commit wrote them,
once), so the sink writes nothing more, and a configuration naming it still works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_engine.plugins.sinks.store import StoreSink, mcp_engine_event_sinks
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.base import TurnWrite
from mcp_engine.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "engine.db"))
    await store.open()
    yield store
    await store.close()


def test_the_hook_provides_the_sink() -> None:
    assert mcp_engine_event_sinks() == [StoreSink]
    assert StoreSink.name == "store"


async def test_published_events_are_not_written_a_second_time(store: SQLiteStore) -> None:
    events = [
        {"tenant_id": "t1", "type": "message_in", "conversation_id": "c1", "text": "hi"},
        {"tenant_id": "t1", "type": "run_completed", "conversation_id": "c1"},
    ]
    await store.commit(TurnWrite("t1", "c1", None, {"slots": {}}, events=events))
    services = EngineServices(env={})
    services.keep_events_in(store.record_events)
    sink = StoreSink(StoreSink.Config(), services)
    await sink.publish(events)
    await sink.close()
    kept = await store.events("t1")
    assert [(e["type"], e["conversation_id"]) for e in kept] == [
        ("message_in", "c1"),
        ("run_completed", "c1"),
    ]
    assert kept[0]["text"] == "hi"


async def test_the_sink_needs_no_event_writer() -> None:
    sink = StoreSink(StoreSink.Config(), EngineServices(env={}))
    await sink.publish([{"tenant_id": "t1", "type": "message_in"}])

"""The ``store`` event sink: events a turn publishes land in the engine's store, readable per tenant; the
sink reaches the store only through ``services.write_events``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_engine.plugins.sinks.store import StoreSink, mcp_engine_event_sinks
from mcp_engine.runtime.services import EngineServices
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


async def test_published_events_are_kept_in_the_store(store: SQLiteStore) -> None:
    services = EngineServices(env={})
    services.keep_events_in(store.record_events)
    sink = StoreSink(StoreSink.Config(), services)
    await sink.publish(
        (
            {"tenant_id": "t1", "type": "message_in", "conversation_id": "c1", "text": "hi"},
            {"tenant_id": "t1", "type": "run_completed", "conversation_id": "c1"},
        )
    )
    await sink.publish([{"tenant_id": "t2", "type": "message_in", "conversation_id": "c9"}])
    await sink.close()
    events = await store.events("t1")
    assert [(e["type"], e["conversation_id"]) for e in events] == [
        ("message_in", "c1"),
        ("run_completed", "c1"),
    ]
    assert events[0]["text"] == "hi"
    assert [e["type"] for e in await store.events("t2")] == ["message_in"]


async def test_without_an_event_writer_publishing_fails_loudly() -> None:
    sink = StoreSink(StoreSink.Config(), EngineServices(env={}))
    with pytest.raises(RuntimeError, match="keeps no analytics events"):
        await sink.publish([{"tenant_id": "t1", "type": "message_in"}])

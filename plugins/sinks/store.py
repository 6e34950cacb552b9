"""``store``: the embedded default event sink, keeping analytics events in the engine's own store.

With no Redis or Kafka configured, events still have to land somewhere experiments can read them back
(``Store.events``); the store the engine already has is that place, and needs no extra service. The sink
reaches it only through ``services.write_events``, never the store itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp_engine import EventSink, hookimpl


class StoreSink(EventSink):
    name = "store"
    description = "Keeps analytics events in the engine's store (the embedded default)."

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        await self.services.write_events(events)


@hookimpl
def mcp_engine_event_sinks() -> list[type[EventSink]]:
    return [StoreSink]

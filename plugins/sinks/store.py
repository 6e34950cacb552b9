"""``store``: the engine's own store as an event sink, which now writes nothing itself.

A turn's events are written once, in the turn's own commit (the conversation's history, which also serves
``Store.events`` and counts experiment runs), whatever sinks are configured; a second copy here would
double the store's writes for nothing. The sink stays so that ``MCP_EVENT_SINKS=store`` keeps meaning
"events kept in the engine's store" for configurations that name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp_engine import EventSink, hookimpl


class StoreSink(EventSink):
    name = "store"
    description = "The engine's store, which keeps every turn's events with the turn (nothing more to write)."

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        """The turn's commit stored these already."""


@hookimpl
def mcp_engine_event_sinks() -> list[type[EventSink]]:
    return [StoreSink]

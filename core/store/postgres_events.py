"""A conversation's history and a tenant's analytics events in PostgreSQL: one append-only table, read in
pages by conversation (``history``) or by tenant and type (``events``).

Every event is written once. A turn appends its events in its own statement (``postgres_turns``), which
also counts the events of experiment runs; an event recorded outside a turn (``record_events``: an
abandoned turn's error, a plugin's analytics event) is a row of the same table marked as not part of its
conversation's history (``in_history``), so the event queries see both in one order.
"""

from __future__ import annotations

from typing import Any

from mcp_engine.errors import UnstorableData
from mcp_engine.store.base import encode_json
from mcp_engine.store.postgres_experiments import count_runs, run_columns
from mcp_engine.store.postgres_pool import CONVERSATION, PoolUser, outage_is_unavailable
from mcp_engine.store.run_tally import tally_runs

_MAX_SEQ = 2**63 - 1
_APPEND = (
    "INSERT INTO history (tenant_id, conversation_id, type, event, in_history) SELECT t, c, y, e, false"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS u(t, c, y, e, n)"
    " ORDER BY n"
)
_APPEND_AND_COUNT = f"WITH appended AS ({_APPEND}) {count_runs(5)}"


class EventTables(PoolUser):
    """History and analytics events: the ``Store`` methods of the same names."""

    @outage_is_unavailable
    async def history(
        self, tenant_id: str, conversation_id: str, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        rows = await self._db().fetch(
            f"SELECT seq, event FROM history WHERE {CONVERSATION} AND in_history AND seq < $3"
            " ORDER BY seq DESC LIMIT $4",
            tenant_id,
            conversation_id,
            _MAX_SEQ if before is None else before,
            max(limit, 0),
        )
        return [{**row["event"], "seq": row["seq"]} for row in rows]

    # analytics events
    @outage_is_unavailable
    async def record_events(self, events: list[dict[str, Any]]) -> None:
        tenants: list[str] = []
        conversations: list[str] = []
        types: list[str] = []
        bodies: list[bytes] = []
        for i, event in enumerate(events):
            tenant_id, event_type = event.get("tenant_id"), event.get("type")
            if not isinstance(tenant_id, str) or not isinstance(event_type, str):
                raise UnstorableData(f"events[{i}] needs a string tenant_id and type", {"index": i})
            bodies.append(encode_json(event, f"events[{i}]"))
            tenants.append(tenant_id)
            conversation_id = event.get("conversation_id")
            conversations.append(conversation_id if isinstance(conversation_id, str) else "")
            types.append(event_type)
        if not bodies:
            return
        tallies = tally_runs(events)
        if tallies:
            await self._db().execute(
                _APPEND_AND_COUNT, tenants, conversations, types, bodies, *run_columns(tallies)
            )
        else:
            await self._db().execute(_APPEND, tenants, conversations, types, bodies)

    @outage_is_unavailable
    async def events(
        self, tenant_id: str, event_type: str | None = None, limit: int = 1000, after: int | None = None
    ) -> list[dict[str, Any]]:
        by_type = "" if event_type is None else " AND type = $4"  # a separate query, so it uses its index
        rows = await self._db().fetch(
            f"SELECT seq, event FROM history WHERE tenant_id = $1 AND seq > $2{by_type}"
            " ORDER BY seq LIMIT $3",
            tenant_id,
            after or 0,
            max(limit, 0),
            *(() if event_type is None else (event_type,)),
        )
        return [{**row["event"], "seq": row["seq"]} for row in rows]

"""A conversation's history and a tenant's analytics events in PostgreSQL: append-only, read in pages.

A turn appends its history events in its own statement (``postgres_turns``); analytics events arrive in
batches from the ``store`` event sink, and the events of experiment runs update those runs' counts in the
same statement (``postgres_experiments.COUNT_RUNS``).
"""

from __future__ import annotations

from typing import Any

from mcp_engine.errors import UnstorableData
from mcp_engine.store.base import encode_json
from mcp_engine.store.postgres_experiments import COUNT_RUNS, run_columns
from mcp_engine.store.postgres_pool import CONVERSATION, PoolUser, outage_is_unavailable
from mcp_engine.store.run_tally import tally_runs

_MAX_SEQ = 2**63 - 1
_APPEND = (
    "INSERT INTO events (tenant_id, type, event) SELECT t, y, e"
    " FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS u(t, y, e, n) ORDER BY n"
)
_APPEND_AND_COUNT = f"WITH appended AS ({_APPEND}) {COUNT_RUNS}"


class EventTables(PoolUser):
    """History and analytics events: the ``Store`` methods of the same names."""

    @outage_is_unavailable
    async def history(
        self, tenant_id: str, conversation_id: str, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        rows = await self._db().fetch(
            f"SELECT seq, event FROM history WHERE {CONVERSATION} AND seq < $3 ORDER BY seq DESC LIMIT $4",
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
        types: list[str] = []
        bodies: list[bytes] = []
        for i, event in enumerate(events):
            tenant_id, event_type = event.get("tenant_id"), event.get("type")
            if not isinstance(tenant_id, str) or not isinstance(event_type, str):
                raise UnstorableData(f"events[{i}] needs a string tenant_id and type", {"index": i})
            bodies.append(encode_json(event, f"events[{i}]"))
            tenants.append(tenant_id)
            types.append(event_type)
        if not bodies:
            return
        tallies = tally_runs(events)
        if tallies:
            await self._db().execute(_APPEND_AND_COUNT, tenants, types, bodies, *run_columns(tallies))
        else:
            await self._db().execute(_APPEND, tenants, types, bodies)

    @outage_is_unavailable
    async def events(
        self, tenant_id: str, event_type: str | None = None, limit: int = 1000, after: int | None = None
    ) -> list[dict[str, Any]]:
        by_type = "" if event_type is None else " AND type = $4"  # a separate query, so it uses its index
        rows = await self._db().fetch(
            f"SELECT seq, event FROM events WHERE tenant_id = $1 AND seq > $2{by_type} ORDER BY seq LIMIT $3",
            tenant_id,
            after or 0,
            max(limit, 0),
            *(() if event_type is None else (event_type,)),
        )
        return [{**row["event"], "seq": row["seq"]} for row in rows]

"""The production store's experiments in PostgreSQL: the experiments themselves, the new-run lookup of
the running one, and the per-run counts their results aggregate.

A new run asks for its flow's published version and the experiment running on it in one statement, so
the experiment costs a new run no extra round trip, and a start or stop in any process is seen by the
next new run in every process. At most one experiment runs per flow: a partial unique index says so,
so two starts racing in two processes cannot both win.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from mcp_engine.errors import ExperimentConflict, ExperimentOverlap
from mcp_engine.store.base import (
    ExperimentRecord,
    VariantCounts,
    encode_json,
    found_experiment,
    start_changed_nothing,
)
from mcp_engine.store.postgres_pool import PoolUser, changes_catalogue, outage_is_unavailable
from mcp_engine.store.run_tally import RunTally

_EXPERIMENT = "tenant_id, experiment_id, flow_id, document, status, created_at, started_at, stopped_at, bases"
_ONE = "tenant_id = $1 AND experiment_id = $2"


def count_runs(first: int, gate: str = "") -> str:
    """The statement merging a batch's run counts (``run_tally``) into ``experiment_runs``, its ten column
    arrays the parameters from ``$first`` on; it follows the events' own INSERT in the same statement, and
    ``gate`` (``"written, "``: a turn's compare-and-set) is joined in so it writes only when that did."""
    arrays = ", ".join(
        f"${first + i}::{kind}[]"
        for i, kind in enumerate(("text",) * 5 + ("float8", "int", "int", "float8", "int"))
    )
    return f"""
INSERT INTO experiment_runs (tenant_id, experiment_id, run, variant, conversation_id, first_seen, turns,
    no_matches, completed_at, turns_to_complete)
SELECT u.* FROM {gate}unnest({arrays}) AS u
ON CONFLICT (tenant_id, experiment_id, run) DO UPDATE SET
    first_seen = LEAST(experiment_runs.first_seen, EXCLUDED.first_seen),
    turns = experiment_runs.turns + EXCLUDED.turns,
    no_matches = experiment_runs.no_matches + EXCLUDED.no_matches,
    completed_at = COALESCE(experiment_runs.completed_at, EXCLUDED.completed_at),
    turns_to_complete = COALESCE(experiment_runs.turns_to_complete, EXCLUDED.turns_to_complete)
"""


def run_columns(tallies: list[RunTally]) -> list[list[Any]]:
    """The tallies as the ten column arrays ``count_runs`` unnests."""
    return [list(column) for column in zip(*(tally.row() for tally in tallies), strict=True)]


class ExperimentTables(PoolUser):
    """Experiments: the ``Store`` methods of the same names."""

    @outage_is_unavailable
    async def create_experiment(self, record: ExperimentRecord) -> tuple[ExperimentRecord, bool]:
        body = encode_json(record.document, "experiment document", canonical=True)
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                f"INSERT INTO experiments ({_EXPERIMENT}) VALUES ($1, $2, $3, $4, 'draft', $5, NULL, NULL,"
                f" '{{}}') ON CONFLICT (tenant_id, experiment_id) DO NOTHING RETURNING {_EXPERIMENT}",
                record.tenant_id,
                record.experiment_id,
                record.flow_id,
                body,
                record.created_at,
            )
            if row is not None:
                return _record(row), False
            row = await conn.fetchrow(
                f"SELECT {_EXPERIMENT}, document = $3 AS same FROM experiments WHERE {_ONE}",
                record.tenant_id,
                record.experiment_id,
                body,
            )
        if not row["same"]:
            raise ExperimentConflict(
                f"experiment '{record.experiment_id}' is already stored with another document",
                {"experiment_id": record.experiment_id},
            )
        return _record(row), True

    @outage_is_unavailable
    async def get_experiment(self, tenant_id: str, experiment_id: str) -> ExperimentRecord | None:
        row = await self._db().fetchrow(
            f"SELECT {_EXPERIMENT} FROM experiments WHERE {_ONE}", tenant_id, experiment_id
        )
        return None if row is None else _record(row)

    @outage_is_unavailable
    async def list_experiments(self, tenant_id: str) -> list[ExperimentRecord]:
        rows = await self._db().fetch(
            f"SELECT {_EXPERIMENT} FROM experiments WHERE tenant_id = $1 ORDER BY created_at, experiment_id",
            tenant_id,
        )
        return [_record(row) for row in rows]

    @outage_is_unavailable
    @changes_catalogue
    async def start_experiment(
        self, tenant_id: str, experiment_id: str, bases: dict[str, str], now: float
    ) -> ExperimentRecord:
        try:
            row = await self._db().fetchrow(
                "UPDATE experiments SET status = 'running', started_at = $3, bases = $4"
                f" WHERE {_ONE} AND status = 'draft' RETURNING {_EXPERIMENT}",
                tenant_id,
                experiment_id,
                now,
                encode_json(bases, "bases"),
            )
        except asyncpg.UniqueViolationError:
            current = await self._existing(tenant_id, experiment_id)
            running = await self._db().fetchval(
                "SELECT experiment_id FROM experiments WHERE tenant_id = $1 AND flow_id = $2"
                " AND status = 'running'",
                tenant_id,
                current.flow_id,
            )
            raise ExperimentOverlap(current.flow_id, str(running)) from None
        if row is not None:
            return _record(row)
        return start_changed_nothing(await self.get_experiment(tenant_id, experiment_id), experiment_id)

    @outage_is_unavailable
    @changes_catalogue
    async def stop_experiment(self, tenant_id: str, experiment_id: str, now: float) -> ExperimentRecord:
        row = await self._db().fetchrow(
            "UPDATE experiments SET status = 'stopped', stopped_at = $3"
            f" WHERE {_ONE} AND status != 'stopped' RETURNING {_EXPERIMENT}",
            tenant_id,
            experiment_id,
            now,
        )
        return _record(row) if row is not None else await self._existing(tenant_id, experiment_id)

    @outage_is_unavailable
    async def published_with_experiment(self, tenant_id: str, flow_id: str) -> tuple[str | None, str | None]:
        row = await self._db().fetchrow(
            "SELECT (SELECT version FROM flow_versions WHERE tenant_id = $1 AND flow_id = $2"
            " AND status = 'published'), (SELECT experiment_id FROM experiments WHERE tenant_id = $1"
            " AND flow_id = $2 AND status = 'running')",
            tenant_id,
            flow_id,
        )
        return row[0], row[1]

    @outage_is_unavailable
    async def experiment_counts(self, tenant_id: str, experiment_id: str) -> list[VariantCounts]:
        rows = await self._db().fetch(
            "SELECT variant, count(*), count(completed_at), COALESCE(sum(turns_to_complete), 0),"
            " COALESCE(sum(turns), 0), COALESCE(sum(no_matches), 0) FROM experiment_runs"
            f" WHERE {_ONE} GROUP BY variant ORDER BY variant",
            tenant_id,
            experiment_id,
        )
        return [VariantCounts(*(row[0], *(int(value) for value in row[1:]))) for row in rows]

    async def _existing(self, tenant_id: str, experiment_id: str) -> ExperimentRecord:
        return found_experiment(await self.get_experiment(tenant_id, experiment_id), experiment_id)


def _record(row: asyncpg.Record) -> ExperimentRecord:
    return ExperimentRecord(*(row[i] for i in range(9)))

"""The embedded store's experiments: the experiments themselves, the new-run lookup of the running one,
and the per-run counts their results aggregate (the SQLite twin of ``postgres_experiments``).

The file itself enforces one running experiment per flow (a partial unique index), so two engines on
one file cannot both start one; each new run reads the running one with its flow's published version.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite
import orjson

from mcp_engine.errors import ExperimentConflict, ExperimentOverlap
from mcp_engine.store.base import (
    ExperimentRecord,
    VariantCounts,
    encode_json,
    found_experiment,
    start_changed_nothing,
)
from mcp_engine.store.run_tally import RunTally

_EXPERIMENT = "tenant_id, experiment_id, flow_id, document, status, created_at, started_at, stopped_at, bases"
_ONE = "tenant_id = ? AND experiment_id = ?"
_COUNT_RUNS = """
INSERT INTO experiment_runs (tenant_id, experiment_id, run, variant, conversation_id, first_seen, turns,
    no_matches, completed_at, turns_to_complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, experiment_id, run) DO UPDATE SET
    first_seen = min(first_seen, excluded.first_seen),
    turns = turns + excluded.turns,
    no_matches = no_matches + excluded.no_matches,
    completed_at = coalesce(completed_at, excluded.completed_at),
    turns_to_complete = coalesce(turns_to_complete, excluded.turns_to_complete)
"""


def count_runs(conn: sqlite3.Connection, tallies: list[RunTally]) -> None:
    """Merge a batch's run counts into ``experiment_runs`` (in the writer's thread, inside the
    transaction that appends the events)."""
    if tallies:
        conn.executemany(_COUNT_RUNS, [tally.row() for tally in tallies])


class ExperimentRows(ABC):
    """Experiments: the ``Store`` methods of the same names, over ``SQLiteStore``'s reads and writes."""

    @abstractmethod
    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]: ...

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def create_experiment(self, record: ExperimentRecord) -> tuple[ExperimentRecord, bool]:
        body = encode_json(record.document, "experiment document", canonical=True)
        async with self._transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT {_EXPERIMENT} FROM experiments WHERE {_ONE}",
                    (record.tenant_id, record.experiment_id),
                )
            )
            if rows and rows[0][3] != body:
                raise ExperimentConflict(
                    f"experiment '{record.experiment_id}' is already stored with another document",
                    {"experiment_id": record.experiment_id},
                )
            if rows:
                return _record(rows[0]), True
            row = (record.tenant_id, record.experiment_id, record.flow_id, body, "draft")
            await db.execute(
                f"INSERT INTO experiments ({_EXPERIMENT}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, '{{}}')",
                (*row, record.created_at),
            )
        return _record((*row, record.created_at, None, None, "{}")), False

    async def get_experiment(self, tenant_id: str, experiment_id: str) -> ExperimentRecord | None:
        rows = await self._read(
            f"SELECT {_EXPERIMENT} FROM experiments WHERE {_ONE}", (tenant_id, experiment_id)
        )
        return _record(rows[0]) if rows else None

    async def list_experiments(self, tenant_id: str) -> list[ExperimentRecord]:
        rows = await self._read(
            f"SELECT {_EXPERIMENT} FROM experiments WHERE tenant_id = ? ORDER BY created_at, experiment_id",
            (tenant_id,),
        )
        return [_record(row) for row in rows]

    async def start_experiment(
        self, tenant_id: str, experiment_id: str, bases: dict[str, str], now: float
    ) -> ExperimentRecord:
        try:
            async with self._transaction() as db:
                rows = list(
                    await db.execute_fetchall(
                        "UPDATE experiments SET status = 'running', started_at = ?, bases = ?"
                        f" WHERE {_ONE} AND status = 'draft' RETURNING {_EXPERIMENT}",
                        (now, encode_json(bases, "bases"), tenant_id, experiment_id),
                    )
                )
        except sqlite3.IntegrityError:
            current = await self._existing(tenant_id, experiment_id)
            running = await self._read(
                "SELECT experiment_id FROM experiments WHERE tenant_id = ? AND flow_id = ?"
                " AND status = 'running'",
                (tenant_id, current.flow_id),
            )
            raise ExperimentOverlap(current.flow_id, str(running[0][0]) if running else "?") from None
        if rows:
            return _record(rows[0])
        return start_changed_nothing(await self.get_experiment(tenant_id, experiment_id), experiment_id)

    async def stop_experiment(self, tenant_id: str, experiment_id: str, now: float) -> ExperimentRecord:
        async with self._transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "UPDATE experiments SET status = 'stopped', stopped_at = ?"
                    f" WHERE {_ONE} AND status != 'stopped' RETURNING {_EXPERIMENT}",
                    (now, tenant_id, experiment_id),
                )
            )
        return _record(rows[0]) if rows else await self._existing(tenant_id, experiment_id)

    async def published_with_experiment(self, tenant_id: str, flow_id: str) -> tuple[str | None, str | None]:
        rows = await self._read(
            "SELECT (SELECT version FROM flow_versions WHERE tenant_id = ?1 AND flow_id = ?2"
            " AND status = 'published'), (SELECT experiment_id FROM experiments WHERE tenant_id = ?1"
            " AND flow_id = ?2 AND status = 'running')",
            (tenant_id, flow_id),
        )
        return rows[0][0], rows[0][1]

    async def experiment_counts(self, tenant_id: str, experiment_id: str) -> list[VariantCounts]:
        rows = await self._read(
            "SELECT variant, count(*), count(completed_at), coalesce(sum(turns_to_complete), 0),"
            " coalesce(sum(turns), 0), coalesce(sum(no_matches), 0) FROM experiment_runs"
            f" WHERE {_ONE} GROUP BY variant ORDER BY variant",
            (tenant_id, experiment_id),
        )
        return [VariantCounts(row[0], *(int(value) for value in row[1:])) for row in rows]

    async def _existing(self, tenant_id: str, experiment_id: str) -> ExperimentRecord:
        return found_experiment(await self.get_experiment(tenant_id, experiment_id), experiment_id)


def _record(row: Iterable[Any]) -> ExperimentRecord:
    tenant_id, experiment_id, flow_id, document, status, created_at, started_at, stopped_at, bases = row
    return ExperimentRecord(
        tenant_id,
        experiment_id,
        flow_id,
        orjson.loads(document),
        status,
        created_at,
        started_at,
        stopped_at,
        orjson.loads(bases),
    )

"""What a turn writes to PostgreSQL, in one statement: the context's compare-and-set, and only if it
succeeds the history events, the idempotency record, the timer change and, for a turn of an experiment's
run, that run's counts (data-modifying CTEs), so one round trip and one implicit transaction. The history
rows are the only copy of the turn's events: they also serve the event queries (``postgres_events``).
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]

from mcp_engine.errors import ConcurrentUpdate
from mcp_engine.store.base import Timer, TurnWrite
from mcp_engine.store.postgres_experiments import count_runs, run_columns
from mcp_engine.store.run_tally import RunTally

# What a turn writes besides the context, as data-modifying CTEs of one statement: they run only when the
# compare-and-set (``written``) returned a row, all in the statement's one implicit transaction.
# $1 tenant, $2 conversation, $3 context, $4 now, $5 events, $6 message id, $7 reply, $8 timer mode
# ('set', 'clear' or 'keep'), $9-$11 the timer's due_at, state and run, ($12 the expected version), then
# the run counts' ten column arrays when the turn counts an experiment's run.
_TURN_WRITES = """
, appended AS (
    INSERT INTO history (tenant_id, conversation_id, type, event)
    SELECT $1::text, $2::text, e->>'type', e FROM written, unnest($5::jsonb[]) WITH ORDINALITY AS t(e, n)
    ORDER BY n
), recorded AS (
    INSERT INTO idempotency (tenant_id, conversation_id, message_id, reply, created_at)
    SELECT $1::text, $2::text, $6::text, $7::jsonb, $4::float8 FROM written WHERE $6::text IS NOT NULL
    ON CONFLICT (tenant_id, conversation_id, message_id)
    DO UPDATE SET reply = EXCLUDED.reply, created_at = EXCLUDED.created_at
), timer_set AS (
    INSERT INTO timers (tenant_id, conversation_id, due_at, state, run)
    SELECT $1::text, $2::text, $9::float8, $10::text, $11::text FROM written WHERE $8::text = 'set'
    ON CONFLICT (tenant_id, conversation_id)
    DO UPDATE SET due_at = EXCLUDED.due_at, state = EXCLUDED.state, run = EXCLUDED.run, claimed_until = NULL
), timer_cleared AS (
    DELETE FROM timers WHERE tenant_id = $1 AND conversation_id = $2 AND $8::text = 'clear'
    AND EXISTS (SELECT FROM written)
)"""
_RESULT = "\nSELECT version FROM written"
# A reset row (context NULL) counts as absent but keeps its version, so versions never repeat.
_CREATE = (
    "WITH written AS (INSERT INTO conversations (tenant_id, conversation_id, context, version, updated_at)"
    " VALUES ($1, $2, $3, 1, $4) ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET"
    " context = EXCLUDED.context, version = conversations.version + 1, updated_at = EXCLUDED.updated_at"
    " WHERE conversations.context IS NULL RETURNING version)" + _TURN_WRITES
)
_UPDATE = (
    "WITH written AS (UPDATE conversations SET context = $3, version = version + 1, updated_at = $4"
    " WHERE tenant_id = $1 AND conversation_id = $2 AND version = $12 AND context IS NOT NULL"
    " RETURNING version)" + _TURN_WRITES
)
CREATE_TURN = _CREATE + _RESULT
UPDATE_TURN = _UPDATE + _RESULT
# A turn of an experiment's run: the same, and its run's counts (separate statements, so a turn of no
# experiment carries no empty arrays).
CREATE_COUNTED_TURN = f"{_CREATE}, counted AS ({count_runs(12, 'written, ')}){_RESULT}"
UPDATE_COUNTED_TURN = f"{_UPDATE}, counted AS ({count_runs(13, 'written, ')}){_RESULT}"


async def write_turn(
    db: asyncpg.Pool,
    write: TurnWrite,
    context: bytes,
    events: list[bytes],
    record: tuple[str, bytes] | None,
    now: float,
    tallies: list[RunTally],
) -> int | None:
    """Run the turn's statement with its already encoded parts; the new version, or None when the
    compare-and-set failed (nothing was written)."""
    timer = write.timer
    arguments: list[Any] = [
        write.tenant_id,
        write.conversation_id,
        context,
        now,
        events,
        *(record or (None, None)),
        "set" if isinstance(timer, Timer) else "keep" if timer == "keep" else "clear",
        *((timer.due_at, timer.state, timer.run) if isinstance(timer, Timer) else (None, None, None)),
    ]
    counts = run_columns(tallies)
    if write.expected_version is None:
        statement = CREATE_COUNTED_TURN if tallies else CREATE_TURN
        version: int | None = await db.fetchval(statement, *arguments, *counts)
    else:
        statement = UPDATE_COUNTED_TURN if tallies else UPDATE_TURN
        version = await db.fetchval(statement, *arguments, write.expected_version, *counts)
    return version


def conflict(write: TurnWrite) -> ConcurrentUpdate:
    return ConcurrentUpdate(
        f"conversation '{write.conversation_id}' changed since version {write.expected_version}",
        {"conversation_id": write.conversation_id, "expected_version": write.expected_version},
    )

"""The stack's own floor with the embedded store, and the engine's in-process turn rate against it.

The floor handler does what any turn must at least do, on the plain libraries the engine is built on:
validate a request body with the REST request model (pydantic, from JSON), one SQLite read of the
conversation row, one transactional write (BEGIN IMMEDIATE, INSERT OR REPLACE of a 2 KB JSON context,
COMMIT) through aiosqlite, and dump a reply with pydantic. The engine runs the pizza happy path with
``ExecutionService`` on ``SQLiteStore`` (the same turns as the ``turns`` set). Same process, same counts,
same concurrency (1 and 16 in flight), 3 repetitions each.
"""

from __future__ import annotations

import asyncio

import aiosqlite
import orjson

from benchmarks.load import SCRIPT, Run, in_process, sqlite_pizza, timed_conversations
from benchmarks.report import Section
from mcp_engine.api.rest.models import MessageOut, MessageRequest


async def _floor_run(scratch: str, conversations: int, in_flight: int) -> Run:
    path = f"{scratch}/floor.db"
    writer = await aiosqlite.connect(path, isolation_level=None)
    await writer.execute("PRAGMA journal_mode=WAL")
    await writer.execute("PRAGMA synchronous = NORMAL")
    await writer.execute(
        "CREATE TABLE IF NOT EXISTS conversations (tenant_id TEXT, conversation_id TEXT, context BLOB,"
        " version INTEGER, PRIMARY KEY (tenant_id, conversation_id))"
    )
    reader = await aiosqlite.connect(path, isolation_level=None)
    write_lock = asyncio.Lock()
    context = {
        "slots": {"size": "large", "count": 2},
        "variables": {"blob": "x" * 1900},
        "current_state": "s",
    }

    async def turn(n: int, text: str) -> None:
        body = orjson.dumps({"tenant_id": "demo", "content": {"type": "text", "text": text}})
        request = MessageRequest.model_validate_json(body)
        key = (request.tenant_id, f"floor-{n}")
        rows = list(
            await reader.execute_fetchall(
                "SELECT context, version FROM conversations WHERE tenant_id = ? AND conversation_id = ?", key
            )
        )
        version = rows[0][1] + 1 if rows else 1
        async with write_lock:
            await writer.execute("BEGIN IMMEDIATE")
            await writer.execute(
                "INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?)",
                (*key, orjson.dumps(context), version),
            )
            await writer.execute("COMMIT")
        MessageOut(type="text", text=request.content.text, attributes={}).model_dump_json()

    try:
        return await timed_conversations(conversations, in_flight, turn)
    finally:
        await reader.close()
        await writer.close()


def run(quick: bool = False) -> Section:
    conversations = 40 if quick else 200
    rows, _ratios, figures = in_process(
        ("engine turn", sqlite_pizza), ("floor handler", _floor_run), conversations
    )
    return Section(
        "The stack's floor (embedded store) vs the engine's in-process turn",
        ["what", "in flight", "per s (median, min-max of 3)", "p50 ms", "p99 ms", "engine/floor"],
        rows,
        [],
        notes=[
            f"{conversations} conversations x {len(SCRIPT)} messages per repetition.",
            "Floor: pydantic validate (MessageRequest from JSON) + one SQLite read + BEGIN IMMEDIATE / "
            "INSERT OR REPLACE of a 2 KB context / COMMIT (aiosqlite) + pydantic dump, per turn.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

"""Turns per second of ``ExecutionService`` on the pizza flow in one process, on each store.

Baselines from the same run: the embedded store's own floor for a turn (take the lock, load the context,
commit it with two events: what any turn must at least do), so engine/floor shows what the engine adds on
top; and the engine on the embedded store, so production/embedded shows what moving to the shared
PostgreSQL + Redis stores costs one process.
"""

from __future__ import annotations

from benchmarks.load import SCRIPT, Run, in_process, production_pizza, sqlite_pizza, timed_conversations
from benchmarks.report import Section
from mcp_engine.store.base import TurnWrite
from mcp_engine.store.sqlite import SQLiteStore

CONTEXT = {"slots": {"size": "large", "count": 2}, "variables": {"blob": "x" * 1800}, "current_state": "s"}
EVENTS = [{"type": "message_in", "tenant_id": "demo", "data": {"text": "hi"}}] * 2


async def _store_floor(scratch: str, conversations: int, in_flight: int) -> Run:
    store = SQLiteStore(f"{scratch}/floor.db")
    await store.open()

    async def turn(n: int, text: str) -> None:
        async with store.begin_turn("demo", f"floor-{n}", None, 5) as start:
            version = start.conversation.version if start.conversation else None
            await start.commit(TurnWrite("demo", f"floor-{n}", version, CONTEXT, list(EVENTS)))

    try:
        return await timed_conversations(conversations, in_flight, turn)
    finally:
        await store.close()


def run(quick: bool = False) -> Section:
    conversations = 16 if quick else 200
    rows, _ratios, figures = in_process(
        {
            "engine, embedded": sqlite_pizza,
            "store floor, embedded": _store_floor,
            "engine, production": production_pizza,
        },
        {"engine, embedded": "store floor, embedded", "engine, production": "engine, embedded"},
        conversations,
        quick,
    )
    return Section(
        "ExecutionService turns on the pizza flow, one process, on each store",
        ["what", "in flight", "turns/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [],
        notes=[
            f"{conversations} conversations x {len(SCRIPT)} messages per repetition (the pizza happy path).",
            "Store floor: begin (lock + load), commit of a 2 KB context with two events per turn.",
            "Production: PostgreSQL + Redis on 127.0.0.1, a fresh schema and key prefix per repetition.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

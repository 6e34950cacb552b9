"""Turns per second of ``ExecutionService`` on the pizza flow (embedded SQLite), one process.

Baseline from the same run: the store's own floor for a turn (lock, load the context, commit it with
two events: what any turn must at least do), so the ratio shows what the engine adds on top.
"""

from __future__ import annotations

from benchmarks.load import SCRIPT, Run, in_process, sqlite_pizza, timed_conversations
from benchmarks.report import Section
from mcp_engine.store.base import TurnWrite
from mcp_engine.store.sqlite import SQLiteStore

CONTEXT = {"slots": {"size": "large", "count": 2}, "variables": {"blob": "x" * 1800}, "current_state": "s"}
EVENTS = [{"type": "message_in", "tenant_id": "demo", "data": {"text": "hi"}}] * 2


async def _store_floor(scratch: str, conversations: int, in_flight: int) -> Run:
    store = SQLiteStore(f"{scratch}/floor.db")
    await store.open()

    async def turn(n: int, text: str) -> None:
        async with store.lock("demo", f"floor-{n}", 5):
            loaded = await store.load("demo", f"floor-{n}")
            version = loaded.version if loaded else None
            await store.commit(TurnWrite("demo", f"floor-{n}", version, CONTEXT, list(EVENTS)))

    try:
        return await timed_conversations(conversations, in_flight, turn)
    finally:
        await store.close()


def run(quick: bool = False) -> Section:
    conversations = 40 if quick else 200
    rows, _ratios, figures = in_process(
        ("engine turn", sqlite_pizza), ("store floor", _store_floor), conversations
    )
    return Section(
        "ExecutionService turns on the pizza flow (embedded SQLite, one process)",
        ["what", "in flight", "turns/s (median, min-max of 3)", "p50 ms", "p99 ms", "engine/floor"],
        rows,
        [],
        notes=[
            f"{conversations} conversations x {len(SCRIPT)} messages per repetition (the pizza happy path).",
            "Store floor: lock + load + commit of a 2 KB context with two events per turn, same store.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

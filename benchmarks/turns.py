"""Turns per second of ``ExecutionService`` on the pizza flow (embedded SQLite), one process.

Baseline from the same run: the store's own floor for a turn (lock, load the context, commit it with
two events: what any turn must at least do), so the ratio shows what the engine adds on top.
"""

from __future__ import annotations

import asyncio
import tempfile

from benchmarks.load import SCRIPT, Run, compare, pizza_turns, timed_conversations
from benchmarks.report import Section, Target
from mcp_engine.store.base import TurnWrite
from mcp_engine.store.sqlite import SQLiteStore

CONTEXT = {"slots": {"size": "large", "count": 2}, "variables": {"blob": "x" * 1800}, "current_state": "s"}
EVENTS = [{"type": "message_in", "tenant_id": "demo", "data": {"text": "hi"}}] * 2


async def _store_floor(path: str, conversations: int, in_flight: int) -> Run:
    store = SQLiteStore(path)
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
    rows: list[list[str]] = []
    figures: dict[str, object] = {}
    ratios: dict[int, float] = {}
    for in_flight in (1, 16):
        runs: dict[str, list[Run]] = {"engine turn": [], "store floor": []}
        for rep in range(3):
            with tempfile.TemporaryDirectory() as scratch:
                store = SQLiteStore(f"{scratch}/e{rep}.db")
                runs["engine turn"].append(asyncio.run(pizza_turns(store, conversations, in_flight)))
                runs["store floor"].append(
                    asyncio.run(_store_floor(f"{scratch}/f{rep}.db", conversations, in_flight))
                )
        level_rows, ratios[in_flight], figures[str(in_flight)] = compare(
            in_flight, runs, "engine turn", "store floor"
        )
        rows += level_rows
    return Section(
        "ExecutionService turns on the pizza flow (embedded SQLite, one process)",
        ["what", "in flight", "turns/s (median, min-max of 3)", "p50 ms", "p99 ms", "engine/floor"],
        rows,
        [Target("engine turns/s reported beside the store floor", f"{ratios[16]:.2f} at 16 in flight", True)],
        notes=[
            f"{conversations} conversations x {len(SCRIPT)} messages per repetition (the pizza happy path).",
            "Store floor: lock + load + commit of a 2 KB context with two events per turn, same store.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

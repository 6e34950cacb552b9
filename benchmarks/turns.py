"""Turns per second of ``ExecutionService`` on the pizza flow (embedded SQLite), one process.

Baseline from the same run: the store's own floor for a turn (lock, load the context, commit it with
two events: what any turn must at least do), so the ratio shows what the engine adds on top.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import Section, Stats, Target
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.store.base import TurnWrite
from mcp_engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = (
    "I'd like two large pizzas",
    "thin crust please",
    "12 Main Street",
    "(650) 253-0000",
    "yes",
)


async def _engine_run(store_path: str, conversations: int, in_flight: int) -> tuple[float, list[float]]:
    engine = ExecutionService(SQLiteStore(store_path))
    await engine.start()
    for name in ("pizza.json",):
        await engine.publish_flow(
            json.loads((ROOT / "examples" / "flows" / name).read_text()), make_default=True
        )
    latencies: list[float] = []
    gate = asyncio.Semaphore(in_flight)

    async def converse(n: int) -> None:
        async with gate:
            for text in SCRIPT:
                started = time.perf_counter()
                await engine.process_message("demo", f"bench-{n}", InboundMessage(text=text, user_id=f"u{n}"))
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(conversations)))
    elapsed = time.perf_counter() - started
    await engine.close()
    return len(latencies) / elapsed, latencies


async def _floor_run(store_path: str, conversations: int, in_flight: int) -> tuple[float, list[float]]:
    store = SQLiteStore(store_path)
    await store.open()
    context = {
        "slots": {"size": "large", "count": 2},
        "variables": {"blob": "x" * 1800},
        "current_state": "s",
    }
    events = [{"type": "message_in", "tenant_id": "demo", "data": {"text": "hi"}}] * 2
    latencies: list[float] = []
    gate = asyncio.Semaphore(in_flight)

    async def converse(n: int) -> None:
        async with gate:
            for _ in SCRIPT:
                started = time.perf_counter()
                async with store.lock("demo", f"floor-{n}", 5):
                    loaded = await store.load("demo", f"floor-{n}")
                    await store.commit(
                        TurnWrite(
                            "demo", f"floor-{n}", loaded.version if loaded else None, context, list(events)
                        )
                    )
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(conversations)))
    elapsed = time.perf_counter() - started
    await store.close()
    return len(latencies) / elapsed, latencies


def _p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def run(quick: bool = False) -> Section:
    conversations = 40 if quick else 200
    repetitions = 3
    rows: list[list[str]] = []
    figures: dict[str, object] = {}
    ratios: dict[int, float] = {}
    for in_flight in (1, 16):
        engine_rates, floor_rates, engine_lat, floor_lat = [], [], [], []
        for rep in range(repetitions):
            with tempfile.TemporaryDirectory() as scratch:
                rate, lat = asyncio.run(_engine_run(f"{scratch}/e{rep}.db", conversations, in_flight))
                engine_rates.append(rate)
                engine_lat += lat
                rate, lat = asyncio.run(_floor_run(f"{scratch}/f{rep}.db", conversations, in_flight))
                floor_rates.append(rate)
                floor_lat += lat
        engine, floor = Stats.of(engine_rates), Stats.of(floor_rates)
        ratios[in_flight] = engine.median / floor.median
        for label, stats, lat in (("engine turn", engine, engine_lat), ("store floor", floor, floor_lat)):
            rows.append(
                [
                    label,
                    str(in_flight),
                    f"{stats.median:,.0f} ({stats.low:,.0f}-{stats.high:,.0f})",
                    f"{_p(lat, 0.5):.2f}",
                    f"{_p(lat, 0.99):.2f}",
                    f"{ratios[in_flight]:.2f}" if label == "engine turn" else "",
                ]
            )
        figures[str(in_flight)] = {
            "engine_turns_per_s": engine.median,
            "floor_turns_per_s": floor.median,
            "engine_p50_ms": _p(engine_lat, 0.5),
            "engine_p99_ms": _p(engine_lat, 0.99),
            "engine_mean_ms": statistics.fmean(engine_lat) * 1e3,
        }
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

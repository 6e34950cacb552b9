"""``python -m benchmarks.profile_turn embedded|production``: where a pizza turn's CPU goes in the engine
process, by part (the engine's turn code, its store code, the store client, the event loop, libraries).

cProfile over 1,000 turns in process at 16 in flight, after the flow is published and 40 conversations
ran (so nothing is compiled or imported during the profile); each function's own time is given to the
part its file belongs to, and the rest (builtins) is listed by function. Not a benchmark set: cProfile
slows the turn, and only the shares mean something.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections import Counter

from benchmarks.load import POSTGRES_URI, REDIS_URL, ROOT, backing, timed_conversations
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore

PARTS = (
    ("redis", "store client: redis-py"),
    ("asyncpg", "store client: asyncpg"),
    ("aiosqlite", "store client: aiosqlite"),
    ("mcp_engine/store", "engine: store code"),
    ("mcp_engine", "engine: turn"),
    ("rapidfuzz", "libraries (NLU, extractors, templates)"),
    ("phonenumbers", "libraries (NLU, extractors, templates)"),
    ("jinja2", "libraries (NLU, extractors, templates)"),
    ("regex", "libraries (NLU, extractors, templates)"),
    ("asyncio", "event loop"),
    ("selectors", "event loop"),
)
IDLE = "<method 'poll' of 'select.epoll' objects>"


async def profile(kind: str) -> tuple[pstats.Stats, int, float]:
    """The profile of 200 conversations (1,000 turns), the turn count and the process CPU they took."""
    with tempfile.TemporaryDirectory() as scratch:
        async with backing() as name:
            store: Store = (
                SQLiteStore(f"{scratch}/profile.db")
                if kind == "embedded"
                else ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
            )
            engine = ExecutionService(store)
            await engine.start()
            pizza = json.loads((ROOT / "examples" / "flows" / "pizza.json").read_text())
            await engine.catalogue.publish_document(pizza, make_default=True)

            async def turn(n: int, text: str) -> None:
                await engine.process_message("demo", f"c{n}", InboundMessage(text=text, user_id=f"u{n}"))

            await timed_conversations(40, 16, turn)
            profiler = cProfile.Profile()
            started = time.process_time()
            profiler.enable()
            _, latencies = await timed_conversations(200, 16, lambda n, text: turn(n + 1000, text))
            await engine.sinks.drain()
            profiler.disable()
            cpu = time.process_time() - started
            await engine.close()
    return pstats.Stats(profiler), len(latencies), cpu


def main(kind: str) -> None:
    stats, turns, cpu = asyncio.run(profile(kind))
    parts: Counter[str] = Counter()
    builtins: Counter[str] = Counter()
    for (file, _line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        own = entry[2]
        if function == IDLE:
            parts["idle (waiting in epoll)"] += own
            continue
        part = next((name for key, name in PARTS if key in file), None)
        if part is None:
            part = "builtins and the rest"
            builtins[function] += own
        parts[part] += own
    busy = sum(seconds for part, seconds in parts.items() if not part.startswith("idle"))
    print(f"{kind}: {turns} turns, process CPU {cpu / turns * 1e3:.2f} ms a turn (under cProfile)")
    for part, seconds in parts.most_common():
        share = "" if part.startswith("idle") else f" ({seconds / busy:.0%})"
        print(f"  {part}: {seconds / turns * 1e3:.3f} ms a turn{share}")
    print("  builtins, most:", ", ".join(f"{f} {s / turns * 1e3:.3f} ms" for f, s in builtins.most_common(4)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "embedded")

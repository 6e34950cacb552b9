"""Experiment results on 100,000 recorded conversations, on PostgreSQL: the target is under a second.

The runs' analytics events are generated and handed to the store's own bulk insert (``record_events``,
batches of 20,000 events, as the ``store`` sink writes them), so the per-run counts are the ones the
engine would have kept; then the results call (``ExperimentService.results``: read the experiment,
aggregate its runs by variant in one query, compute intervals and tests) is timed. Each run is an
exposure, one to four user messages, sometimes a no-match, and a completion for about 40 % (45 % and
50 % in the two treatments). ``--quick``: 5,000 conversations.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.load import POSTGRES_URI, REDIS_URL, backing
from benchmarks.report import Section, Stats, Target
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.store.postgres import ProductionStore

ROOT = Path(__file__).resolve().parent.parent
PIZZA: dict[str, Any] = json.loads((ROOT / "examples" / "flows" / "pizza.json").read_text())
RATES = {"control": 0.40, "faster": 0.45, "friendlier": 0.50}
EXPERIMENT = {
    "experiment_id": "bench",
    "flow_id": "pizza",
    "variants": [
        {"name": "control", "percentage": 34},
        {"name": "faster", "percentage": 33, "modifications": {"variables": {"style": "fast"}}},
        {"name": "friendlier", "percentage": 33, "modifications": {"variables": {"style": "warm"}}},
    ],
}
BATCH = 20_000
CALLS = 5


def _events(conversations: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = list(RATES)
    events: list[dict[str, Any]] = []
    for n in range(conversations):
        variant = names[n % len(names)]
        base = {"tenant_id": "demo", "conversation_id": f"c-{n}", "run": f"r-{n}", "ts": 1.0}
        tags = {**base, "experiment_id": "bench", "variant": variant}
        turns = rng.randint(1, 4)
        events.append({**tags, "type": "experiment_exposure", "data": {"variant": variant}})
        events.extend({**tags, "type": "message_in", "data": {"text": "hi"}} for _ in range(turns))
        if rng.random() < 0.1:
            events.append({**tags, "type": "no_match", "data": {"count": 1}})
        if rng.random() < RATES[variant]:
            events.append({**tags, "type": "run_completed", "data": {"state": "done", "turns": turns}})
    return events


async def _measure(conversations: int) -> tuple[float, Stats, int]:
    async with backing() as name:
        store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        engine = ExecutionService(store)
        await engine.start()
        try:
            await engine.catalogue.publish_document(PIZZA)
            await engine.experiments.create("demo", EXPERIMENT, start=True)
            events = _events(conversations)
            started = time.perf_counter()
            for first in range(0, len(events), BATCH):
                await store.record_events(events[first : first + BATCH])
            loading = time.perf_counter() - started
            await store._db().execute("ANALYZE experiment_runs")
            samples = []
            for _ in range(CALLS):
                started = time.perf_counter()
                results = await engine.experiments.results("demo", "bench")
                samples.append(time.perf_counter() - started)
            assert sum(v.conversations for v in results.variants) == conversations
            return loading, Stats.of(samples), len(events)
        finally:
            await engine.close()


def run(quick: bool = False) -> Section:
    conversations = 5_000 if quick else 100_000
    loading, stats, events = asyncio.run(_measure(conversations))
    met = stats.median < 1.0
    return Section(
        "Experiment results on recorded conversations (PostgreSQL)",
        ["what", "measured", "note"],
        [
            [f"results of {conversations:,} conversations", stats.ms(), f"median of {CALLS} calls"],
            [f"recording their {events:,} events", f"{loading:.1f} s", f"record_events, {BATCH:,} per batch"],
        ],
        [
            Target(
                f"results of {conversations:,} recorded conversations < 1 s",
                f"{stats.median * 1e3:.1f} ms",
                met,
            )
        ],
        notes=["results = read the experiment + one GROUP BY over its runs' counts + intervals and tests."],
        figures={
            "results_ms": stats.median * 1e3,
            "conversations": conversations,
            "events": events,
            "record_events_s": loading,
        },
    )


if __name__ == "__main__":
    print(run().markdown())

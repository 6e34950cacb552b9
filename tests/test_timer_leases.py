"""A server-side timeout survives a crash between its claim and its turn (issue 10), on both stores.

Firing a timer is claim, then the timer's turn: the claim leases the timer and only the turn's commit
removes it. Here an engine claims a timer and dies before its turn ran; another engine on the same store
fires it once the lease is over, once, and the conversation moves on as it would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.store.base import Store, TurnWrite
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing
from tests.turnkit import TENANT, flow, go, history_types, on, response, talk, wait

LATER = 3600.0  # seconds: "now" for fire_due_timers, well after the wait's timeout


def timeout_flow() -> dict[str, object]:
    return flow(
        "w",
        {
            "w": wait(on("timeout", "late"), on("any_input", "w"), timeout_ms=60_000),
            "late": response("Are you there?", go("parked")),
            "parked": wait(on("any_input", "w")),
        },
    )


async def died_holding_the_timer(engine: ExecutionService) -> None:
    """``engine`` starts a conversation, claims its timer as its timer loop would, and dies."""
    await engine.catalogue.publish_document(timeout_flow(), make_default=True)
    await talk(engine, "c1", "hi")
    [due] = await engine.store.due_timers(time.time() + LATER)
    assert await engine.store.claim_timer(due)
    await engine.close()  # before the timer's turn ran


async def fired_once(survivor: ExecutionService, attempts: int, pause_s: float) -> None:
    """``survivor`` fires the timer once the lease is over (bounded polling), and never again."""
    fired: list[dict[str, Any]] = []
    for _ in range(attempts):
        fired = await fire_due_timers(survivor, now=time.time() + LATER)
        if fired:
            break
        await asyncio.sleep(pause_s)
    assert [m["text"] for f in fired for m in f["messages"]] == ["Are you there?"]
    assert await fire_due_timers(survivor, now=time.time() + LATER) == []
    assert (await survivor.get_state(TENANT, "c1"))["current_state"] == "parked"
    assert (await history_types(survivor, "c1")).count("timer_fired") == 1


class Clock:
    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


async def started(store: Store) -> ExecutionService:
    engine = ExecutionService(store)
    await engine.start()
    return engine


async def test_embedded_a_timer_claimed_by_a_process_that_died_fires_after_the_lease(tmp_path: Path) -> None:
    path = str(tmp_path / "engine.db")
    await died_holding_the_timer(await started(SQLiteStore(path)))
    clock = Clock()
    store = SQLiteStore(path, clock=clock)
    survivor = await started(store)
    try:
        assert await fire_due_timers(survivor, now=time.time() + LATER) == []  # still leased
        clock.ahead = store.timer_lease_s
        await fired_once(survivor, attempts=1, pause_s=0)
    finally:
        await survivor.close()


@pytest.fixture
async def backing() -> AsyncIterator[str]:
    async with fresh_backing("t") as name:
        yield name


async def test_production_a_timer_claimed_by_a_process_that_died_fires_after_the_lease(backing: str) -> None:
    def store() -> ProductionStore:
        return ProductionStore(POSTGRES_URI, REDIS_URL, schema=backing, key_prefix=backing, timer_lease_s=0.3)

    await died_holding_the_timer(await started(store()))
    survivor = await started(store())
    try:
        assert await fire_due_timers(survivor, now=time.time() + LATER) == []  # still leased
        await fired_once(survivor, attempts=100, pause_s=0.02)  # bounded: the lease is 0.3 s
    finally:
        await survivor.close()


async def test_a_stale_timer_is_dropped_not_fired(tmp_path: Path) -> None:
    """A timer whose wait is over (the conversation moved to another run meanwhile) fires nothing and
    is gone, instead of coming back each time its lease ends."""
    clock = Clock()
    store = SQLiteStore(str(tmp_path / "engine.db"), clock=clock)
    engine = await started(store)
    try:
        await engine.catalogue.publish_document(timeout_flow(), make_default=True)
        await talk(engine, "c1", "hi")
        [due] = await engine.store.due_timers(time.time() + LATER)
        context = await engine.get_state(TENANT, "c1")
        context["timer"] = None  # what a new run does (start_run), as a turn that keeps the row would
        conversation = await engine.store.load(TENANT, "c1")
        assert conversation is not None
        await engine.store.commit(TurnWrite(TENANT, "c1", conversation.version, context))
        assert await fire_due_timers(engine, now=time.time() + LATER) == []
        clock.ahead = 2 * store.timer_lease_s
        assert await engine.store.due_timers(time.time() + LATER) == []
        assert not await engine.store.claim_timer(due)
    finally:
        await engine.close()

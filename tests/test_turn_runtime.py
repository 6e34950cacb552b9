"""The runtime around the turn (SPEC §6, §8): the turn deadline, per-conversation serialisation, wait
timers fired once across engines, and the outbound webhook."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mcp_engine import Action, TurnView, hookimpl
from mcp_engine.errors import ConcurrentUpdate, DeadlineExceeded
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.store.base import Tenant
from tests.conftest import States
from tests.turnkit import (
    TENANT,
    end,
    flow,
    go,
    history_types,
    msg,
    on,
    open_engine,
    response,
    serve,
    set_action,
    talk,
    texts,
    wait,
)

LATER = 3600.0  # seconds: "now" for fire_due_timers, well after every timer of these tests


# --- the turn deadline --------------------------------------------------------------------------


class Stall(Action):
    name = "stall"
    description = "Waits for nothing, ignoring the turn's deadline (tests)."

    async def run(self, turn: TurnView) -> None:
        await asyncio.sleep(LATER)  # until the turn is abandoned


class StallPlugin:
    @hookimpl
    def mcp_engine_actions(self) -> list[type[Action]]:
        return [Stall]


async def test_a_turn_longer_than_the_deadline_is_abandoned_and_writes_nothing(
    tmp_path: Path, states: States
) -> None:
    engine = await open_engine(
        tmp_path / "engine.db", states.registry(StallPlugin()), STATE_EXECUTION_TIMEOUT_MS=1500
    )
    try:
        await engine.catalogue.publish_document(
            flow(
                "w",
                {
                    "w": wait(go("stalled", "event.text == 'stall'"), on("any_input", "w")),
                    "stalled": wait(on("any_input", "w"), entry_actions=[{"type": "stall"}]),
                },
            ),
            make_default=True,
        )
        # a new conversation: not even created
        with pytest.raises(DeadlineExceeded):
            await engine.process_message(TENANT, "new", msg("stall"))
        assert await engine.store.load(TENANT, "new") is None
        assert await engine.store.history(TENANT, "new") == []

        # an existing one: context, version and history unchanged
        await talk(engine, "old", "hi")
        before = await engine.store.load(TENANT, "old")
        history = await engine.store.history(TENANT, "old", limit=100)
        with pytest.raises(DeadlineExceeded):
            await engine.process_message(TENANT, "old", msg("stall"))
        after = await engine.store.load(TENANT, "old")
        assert before is not None
        assert after is not None
        assert (after.version, after.context) == (before.version, before.context)
        assert await engine.store.history(TENANT, "old", limit=100) == history
        [reply] = await talk(engine, "old", "hi")  # the lock was released
        assert reply["current_state"] == "w"
    finally:
        await engine.close()


async def test_an_integration_call_is_cut_at_the_turn_deadline(tmp_path: Path, states: States) -> None:
    """The REST client never runs past the turn's deadline (ARCHITECTURE.md): a call slower than
    STATE_EXECUTION_TIMEOUT_MS ends as a ``timeout`` error the flow handles, whatever its own timeout_ms."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), LATER)
        return web.json_response({})

    engine = await open_engine(tmp_path / "engine.db", states.registry(), STATE_EXECUTION_TIMEOUT_MS=200)
    try:
        async with serve(web.get("/slow", slow)) as url:
            await engine.catalogue.publish_document(
                flow(
                    "w",
                    {
                        "w": wait(on("any_input", "call")),
                        "call": {
                            "type": "integration",
                            "config": {"integration_id": "slow", "endpoint": "/slow"},
                            "transitions": [
                                on("integration_success", "w"),
                                on("integration_error", "late", "timeout"),
                            ],
                        },
                        "late": response("too slow", go("w")),
                    },
                    integrations={
                        "slow": {
                            "type": "rest",
                            "base_url": url,
                            "timeout_ms": 60_000,
                            "retry_policy": {"max_retries": 0},
                        }
                    },
                ),
                make_default=True,
            )
            [reply] = await talk(engine, "c1", "hi")
            assert texts(reply) == ["too slow"]
            release.set()
    finally:
        release.set()
        await engine.close()


# --- ordering -----------------------------------------------------------------------------------


def counter_flow() -> dict[str, Any]:
    return flow(
        "w",
        {"w": wait(on("any_input", "w", actions=[set_action("n", expression="variables.n + 1")]))},
        variables={"n": 0},
    )


async def test_messages_of_one_conversation_are_processed_one_at_a_time(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    replies = await asyncio.gather(*(engine.process_message(TENANT, "c1", msg(f"m{i}")) for i in range(20)))
    assert len(replies) == 20
    state = await engine.get_state(TENANT, "c1")
    assert state["variables"]["n"] == 20
    events = await engine.store.history(TENANT, "c1", limit=1000)
    inbound = sorted(e["data"]["text"] for e in events if e["type"] == "message_in")
    assert inbound == sorted(f"m{i}" for i in range(20))


async def test_different_conversations_run_side_by_side(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    await asyncio.gather(*(engine.process_message(TENANT, f"c{i % 5}", msg("x")) for i in range(15)))
    for i in range(5):
        assert (await engine.get_state(TENANT, f"c{i}"))["variables"]["n"] == 3


# --- timers -------------------------------------------------------------------------------------


def timer_flow() -> dict[str, Any]:
    return flow(
        "w",
        {
            "w": wait(
                on("timeout", "late"),
                go("elsewhere", "event.text == 'move'"),
                on("any_input", "w"),
                timeout_ms=60_000,
            ),
            "late": response("Are you there?", go("parked")),
            "parked": wait(on("any_input", "w")),
            "elsewhere": wait(on("any_input", "w")),
            "helping": response("help text", go("help_end")),
            "help_end": end(),
        },
        intents={"help": {"patterns": [r"^help$"]}},
        global_handlers={"intents": {"help": {"target_state": "helping", "resume": True}}},
    )


async def test_two_engines_on_one_store_fire_a_timeout_once(tmp_path: Path, states: States) -> None:
    first = await open_engine(tmp_path / "engine.db", states.registry())
    second = await open_engine(tmp_path / "engine.db", states.registry())
    try:
        await first.catalogue.publish_document(timer_flow(), make_default=True)
        await talk(first, "c1", "hi")
        assert (await first.get_state(TENANT, "c1"))["current_state"] == "w"
        now = time.time() + LATER
        fired = await asyncio.gather(fire_due_timers(first, now=now), fire_due_timers(second, now=now))
        assert [m["text"] for f in fired for t in f for m in t["messages"]] == ["Are you there?"]
        assert await fire_due_timers(first, now=now) == await fire_due_timers(second, now=now) == []
        state = await second.get_state(TENANT, "c1")
        assert state["current_state"] == "parked"
        types = await history_types(first, "c1")
        assert types.count("timer_fired") == 1
    finally:
        await first.close()
        await second.close()


async def test_a_timer_of_a_state_left_fires_nothing(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(timer_flow(), make_default=True)
    await talk(engine, "c1", "hi")
    [stale] = await engine.store.due_timers(time.time() + LATER)
    await talk(engine, "c1", "move")
    assert await fire_due_timers(engine, now=time.time() + LATER) == []
    assert await engine.store.claim_timer(stale) is False
    assert (await engine.get_state(TENANT, "c1"))["current_state"] == "elsewhere"

    # back in "w": only the new visit's timer fires, once
    await talk(engine, "c1", "back")
    fired = await fire_due_timers(engine, now=time.time() + LATER)
    assert [t["messages"][0]["text"] for t in fired] == ["Are you there?"]
    assert await engine.store.claim_timer(stale) is False


async def test_a_wait_state_resumed_after_a_digression_still_times_out(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(timer_flow(), make_default=True)
    [_, helped] = await talk(engine, "c1", "hi", "help")
    assert texts(helped) == ["help text"]
    assert helped["current_state"] == "w"
    fired = await fire_due_timers(engine, now=time.time() + LATER)
    assert [t["messages"][0]["text"] for t in fired] == ["Are you there?"]


async def test_timer_messages_go_to_the_outbound_webhook(engine: ExecutionService) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    async with serve(web.post("/hook", hook)) as url:
        await engine.store.put_tenant(Tenant(TENANT, outbound_webhook=f"{url}/hook"))
        await engine.catalogue.publish_document(timer_flow(), make_default=True)
        await talk(engine, "c1", "hi")
        await fire_due_timers(engine, now=time.time() + LATER)
        await engine.outbound.drain()
        await engine.sinks.drain()
    assert len(received) == 1
    assert received[0]["tenant_id"] == TENANT
    assert received[0]["conversation_id"] == "c1"
    assert [m["text"] for m in received[0]["messages"]] == ["Are you there?"]
    history = await engine.store.history(TENANT, "c1", limit=100)
    assert "Are you there?" in [e["data"].get("text") for e in history if e["type"] == "message_out"]
    stored = [e["type"] for e in await engine.store.events(TENANT)]
    assert "timer_fired" in stored


async def test_two_engines_on_one_file_never_lose_an_update(tmp_path: Path, states: States) -> None:
    """The embedded store's locks are in-process; across engines its compare-and-set keeps the context
    right: a turn either commits or fails with ConcurrentUpdate (safe to retry), never overwrites."""
    engines = [await open_engine(tmp_path / "engine.db", states.registry()) for _ in range(2)]
    try:
        await engines[0].catalogue.publish_document(counter_flow(), make_default=True)
        await talk(engines[0], "c1", "first")
        results = await asyncio.gather(
            *(engines[i % 2].process_message(TENANT, "c1", msg(f"m{i}")) for i in range(10)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(f, ConcurrentUpdate) for f in failures), failures
        state = await engines[1].get_state(TENANT, "c1")
        assert state["variables"]["n"] == 1 + len(results) - len(failures)
    finally:
        for engine in engines:
            await engine.close()

"""The ``priority`` hint in the parallel-turns limiter (MAX_PARALLEL_EXECUTIONS): when it is saturated a
high-priority turn takes the next free slot ahead of everything else, a normal one is refused at once,
a low one is shed while little room is left. Counts and orders, never timings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from mcp_engine.errors import InvalidInput, Overloaded
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter, Priority, priority_of
from tests.engine_fixtures import rest_client
from tests.turnkit import flow, go, on, response, serve, wait

BOUND_S = 20.0  # every wait of these tests ends by then, whatever happens


async def hold(
    limiter: Limiter, priority: Priority, started: list[str], name: str, gate: asyncio.Event
) -> None:
    async with limiter.slot(priority):
        started.append(name)
        await gate.wait()


async def until(test: Any) -> None:
    async with asyncio.timeout(BOUND_S):
        while not test():
            await asyncio.sleep(0.005)


async def test_high_takes_the_next_free_slot_in_arrival_order() -> None:
    limiter = Limiter(2, high_wait_s=BOUND_S)
    started: list[str] = []
    gates = {name: asyncio.Event() for name in ("n1", "n2", "h1", "h2")}
    tasks = [asyncio.create_task(hold(limiter, "normal", started, n, gates[n])) for n in ("n1", "n2")]
    await until(lambda: len(started) == 2)
    tasks += [asyncio.create_task(hold(limiter, "high", started, h, gates[h])) for h in ("h1", "h2")]
    await until(lambda: len(limiter._waiting) == 2)
    for refused in ("normal", "low"):
        with pytest.raises(Overloaded):
            async with limiter.slot(refused):  # type: ignore[arg-type]
                pass
    gates["n1"].set()
    await until(lambda: len(started) == 3)
    assert started == ["n1", "n2", "h1"]
    assert limiter.in_flight == 2
    with pytest.raises(Overloaded):  # h2 is still waiting: a normal turn does not jump it
        async with limiter.slot("normal"):
            pass
    gates["n2"].set()
    await until(lambda: len(started) == 4)
    assert started == ["n1", "n2", "h1", "h2"]
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*tasks)
    assert limiter.in_flight == 0
    assert not limiter._waiting


async def test_high_is_refused_when_no_slot_frees_in_time() -> None:
    limiter = Limiter(1, high_wait_s=0.01)
    async with limiter.slot():
        with pytest.raises(Overloaded):
            async with limiter.slot("high"):
                pass
    assert limiter.in_flight == 0
    assert not limiter._waiting
    async with limiter.slot("high"):  # a free slot is taken at once
        assert limiter.in_flight == 1


async def test_waiting_high_turns_are_bounded() -> None:
    limiter = Limiter(1, high_wait_s=BOUND_S)
    gate = asyncio.Event()
    started: list[str] = []
    holder = asyncio.create_task(hold(limiter, "normal", started, "n", gate))
    await until(lambda: started == ["n"])
    waiter = asyncio.create_task(hold(limiter, "high", started, "h", gate))
    await until(lambda: len(limiter._waiting) == 1)
    with pytest.raises(Overloaded):  # as many waiting as there are slots: the next is refused
        async with limiter.slot("high"):
            pass
    waiter.cancel()  # a caller that goes away leaves no slot behind
    await asyncio.gather(waiter, return_exceptions=True)
    gate.set()
    await holder
    assert limiter.in_flight == 0
    assert not limiter._waiting


async def test_low_needs_a_tenth_of_the_slots_free_and_runs_when_there_is_room() -> None:
    limiter = Limiter(20)
    gate = asyncio.Event()
    started: list[str] = []
    tasks = [asyncio.create_task(hold(limiter, "normal", started, f"n{i}", gate)) for i in range(18)]
    await until(lambda: len(started) == 18)
    async with limiter.slot("low"):  # 2 of 20 free: enough
        with pytest.raises(Overloaded):  # 1 free: a low turn is shed ...
            async with limiter.slot("low"):
                pass
        async with limiter.slot("normal"):  # ... while a normal one still gets the last slot
            assert limiter.in_flight == 20
    gate.set()
    await asyncio.gather(*tasks)
    assert limiter.in_flight == 0


def test_priority_hint_values() -> None:
    assert [priority_of(p) for p in ("", "low", "normal", "high")] == ["normal", "low", "normal", "high"]
    with pytest.raises(InvalidInput, match=r"hints\.priority must be one of low, normal, high"):
        priority_of("urgent")


# --- real turns over REST -----------------------------------------------------------------------


async def test_a_high_priority_turn_is_served_when_the_engine_is_saturated(engine: ExecutionService) -> None:
    """On the kit's engine (a fresh embedded store), with each implementation of the wait state."""
    release = asyncio.Event()
    calls: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.query["who"])
        async with asyncio.timeout(BOUND_S):
            await release.wait()
        return web.json_response({})

    async with serve(web.get("/slow", slow)) as url:
        document = flow(
            "w",
            {
                "w": wait(on("any_input", "call")),
                "call": {
                    "type": "integration",
                    "config": {
                        "integration_id": "slow",
                        "endpoint": "/slow",
                        "request_mapping": {"who": "event.text"},
                    },
                    "transitions": [on("integration_success", "done"), on("integration_error", "done")],
                },
                "done": response("done", go("w")),
            },
            integrations={"slow": {"type": "rest", "base_url": url, "retry_policy": {"max_retries": 0}}},
        )
        await engine.catalogue.publish_document(document, make_default=True)
        limiter = Limiter(2, high_wait_s=BOUND_S)
        async with rest_client(engine, limiter=limiter) as client:

            async def send(conversation: str, priority: str) -> Any:
                body = {
                    "tenant_id": "t1",
                    "content": {"text": conversation},
                    "hints": {"priority": priority},
                }
                response = await client.post(f"/v2/conversations/{conversation}/messages", json=body)
                return response.status, await response.json()

            busy = [asyncio.create_task(send(f"busy{i}", "normal")) for i in range(2)]
            await until(lambda: len(calls) == 2)
            urgent = asyncio.create_task(send("urgent", "high"))
            await until(lambda: len(limiter._waiting) == 1)
            for priority in ("normal", "low", ""):
                status, body = await send(f"refused-{priority}", priority)
                assert (status, body["error"]["code"]) == (503, "overloaded")
            release.set()
            status, reply = await urgent
            assert (status, reply["current_state"]) == (200, "w")
            assert [status for status, _ in await asyncio.gather(*busy)] == [200, 200]
            assert sorted(calls) == ["busy0", "busy1", "urgent"]  # the refused turns never ran
            status, body = await send("bad", "urgent")
            assert status == 400
            assert "priority" in body["error"]["message"]

"""Runs, sub-flows and versions (SPEC §2, §3 ``end``, §6), and the events a turn records (§6, §8)."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_engine.runtime.execution import ExecutionService, Hints
from mcp_engine.store.base import Tenant
from tests.turnkit import (
    TENANT,
    condition,
    end,
    flow,
    go,
    history_types,
    msg,
    on,
    response,
    set_action,
    talk,
    texts,
    wait,
)


def trigger(flow_id: str, return_state: str) -> dict[str, Any]:
    return {"type": "trigger_flow", "flow_id": flow_id, "return_state": return_state}


def address_flow() -> dict[str, Any]:
    """The sub-flow: asks for a city, sees the parent's variable, sets one of its own, ends."""
    return flow(
        "ask_city",
        {
            "ask_city": {
                "type": "slot_filling",
                "config": {
                    "required_slots": ["city"],
                    "validation_rules": {"city": "text"},
                    "prompts": {"city": "City for {{ variables.customer }}?"},
                },
                "transitions": [on("slot_filled", "done", actions=[set_action("from_sub", True)])],
            },
            "done": end("Address saved."),
        },
        flow_id="address",
    )


def parent_flow(as_entry_action: bool) -> dict[str, Any]:
    if as_entry_action:
        start = wait(on("any_input", "collect"))
        collect = response("never shown", go("start"), entry_actions=[trigger("address", "thanks")])
    else:
        start = wait(on("any_input", "collect", actions=[trigger("address", "thanks")]))
        collect = response("never shown", go("start"))
    return flow(
        "start",
        {
            "start": start,
            "collect": collect,
            "thanks": response(
                "Thanks {{ variables.customer }}, {{ slots.city }} ({{ variables.from_sub }})", go("bye")
            ),
            "bye": end(),
        },
        flow_id="parent",
        variables={"customer": "Ada", "from_sub": False},
    )


@pytest.mark.parametrize("as_entry_action", [False, True], ids=["transition_action", "entry_action"])
async def test_trigger_flow_runs_the_sub_flow_then_returns(
    engine: ExecutionService, as_entry_action: bool
) -> None:
    await engine.catalogue.publish_document(address_flow())
    await engine.catalogue.publish_document(parent_flow(as_entry_action), make_default=True)
    [asked, answered] = await talk(engine, "c1", "go", "Paris")
    assert texts(asked) == ["City for Ada?"]
    assert asked["flow_id"] == "address"
    # the sub-flow's end message, then the parent's return_state; slots and variables are shared
    assert texts(answered) == ["Address saved.", "Thanks Ada, Paris (True)"]
    assert answered["flow_id"] == "parent"
    assert answered["current_state"] == "bye"
    state = await engine.get_state(TENANT, "c1")
    assert state["run"]["completed"] is True
    assert state["return_stack"] == []
    types = await history_types(engine, "c1")
    assert types.count("subflow_started") == 1
    assert types.count("subflow_returned") == 1


async def test_an_end_completes_the_run_and_the_next_message_starts_a_new_one(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(
        flow(
            "ask",
            {
                "ask": {
                    "type": "slot_filling",
                    "config": {
                        "required_slots": ["name"],
                        "validation_rules": {"name": "text"},
                        "prompts": {"name": "Name? (visits={{ variables.visits }})"},
                    },
                    "transitions": [
                        on(
                            "slot_filled",
                            "bye",
                            actions=[set_action("visits", expression="variables.visits + 1")],
                        )
                    ],
                },
                "bye": end("Bye {{ slots.name }}, visits={{ variables.visits }}"),
            },
            variables={"visits": 0},
        ),
        make_default=True,
    )
    [first] = await talk(engine, "c1", "Ada")
    assert texts(first) == ["Bye Ada, visits=1"]
    state = await engine.get_state(TENANT, "c1")
    assert state["run"]["completed"] is True
    first_run = state["run"]["id"]

    [second] = await talk(engine, "c1", "Grace")
    # variables reset to the flow's (visits counts from 0 again), slots cleared (the name is asked for
    # again: the new run's first message answers it)
    assert texts(second) == ["Bye Grace, visits=1"]
    state = await engine.get_state(TENANT, "c1")
    assert state["run"]["id"] != first_run
    types = await history_types(engine, "c1")
    assert types.count("run_completed") == 2
    assert types.count("message_in") == 2  # history kept across runs


def versioned_flow(version: str, reply: str) -> dict[str, Any]:
    return flow(
        "w",
        {
            "w": wait(go("bye", "event.text == 'stop'", priority=1), on("any_input", "say")),
            "say": response(reply, go("w")),
            "bye": end("bye"),
        },
        version=version,
    )


async def test_a_conversation_stays_on_its_flow_version_until_it_ends(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(versioned_flow("1.0.0", "old"), make_default=True)
    [first] = await talk(engine, "old", "hi")
    assert (texts(first), first["flow_version"]) == (["old"], "1.0.0")

    await engine.catalogue.publish_document(versioned_flow("1.1.0", "new"))
    [still_old] = await talk(engine, "old", "hi")
    assert (texts(still_old), still_old["flow_version"]) == (["old"], "1.0.0")
    [fresh] = await talk(engine, "new", "hi")
    assert (texts(fresh), fresh["flow_version"]) == (["new"], "1.1.0")

    [ended, next_run] = await talk(engine, "old", "stop", "hi")
    assert texts(ended) == ["bye"]
    assert (texts(next_run), next_run["flow_version"]) == (["new"], "1.1.0")

    await engine.catalogue.publish_document(
        versioned_flow("1.0.0", "old")
    )  # rollback: publish the older one again
    [rolled_back] = await talk(engine, "third", "hi")
    assert rolled_back["flow_version"] == "1.0.0"


async def test_force_flow_picks_the_flow(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(versioned_flow("1.0.0", "main"), make_default=True)
    other = flow("w", {"w": wait(on("any_input", "say")), "say": response("other", go("w"))}, flow_id="other")
    await engine.catalogue.publish_document(other)
    [forced] = await talk(engine, "c1", "hi", hints=Hints(force_flow="other"))
    assert (texts(forced), forced["flow_id"]) == (["other"], "other")
    [kept] = await talk(engine, "c1", "hi")  # no hint: the conversation stays on its flow
    assert (texts(kept), kept["flow_id"]) == (["other"], "other")
    [switched] = await talk(engine, "c1", "hi", hints=Hints(force_flow="f"))
    assert (texts(switched), switched["flow_id"]) == (["main"], "f")


async def test_a_message_id_already_processed_returns_the_stored_reply(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "w",
            {
                "w": wait(on("any_input", "count", actions=[set_action("n", expression="variables.n + 1")])),
                "count": response("n={{ variables.n }}", go("w")),
            },
            variables={"n": 0},
        ),
        make_default=True,
    )
    first = await engine.process_message(TENANT, "c1", msg("a", message_id="m1"))
    again = await engine.process_message(TENANT, "c1", msg("a", message_id="m1"))
    assert texts(first) == texts(again) == ["n=1"]
    assert (await engine.get_state(TENANT, "c1"))["variables"]["n"] == 1


# --- events -------------------------------------------------------------------------------------


async def test_history_and_the_store_sink_hold_the_turn_events(engine: ExecutionService) -> None:
    await engine.store.put_tenant(Tenant(TENANT))
    await engine.catalogue.publish_document(
        flow(
            "w",
            {
                "w": wait(on("any_input", "check", actions=[set_action("x", 1)])),
                "check": condition(go("bye", "variables.x == 1"), go("w", "variables.x != 1")),
                "bye": end("bye"),
            },
        ),
        make_default=True,
    )
    await talk(engine, "c1", "hi")
    types = await history_types(engine, "c1")
    for expected in ("state_entered", "message_in", "transition", "action", "message_out", "run_completed"):
        assert expected in types
    assert types.index("message_in") < types.index("action") < types.index("run_completed")
    await engine.sinks.drain()
    stored = [e["type"] for e in await engine.store.events(TENANT)]
    assert stored == types

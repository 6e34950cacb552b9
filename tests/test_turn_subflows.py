"""Sub-flows and the global handlers in force there (SPEC §5, issue 10): a sub-flow inherits its caller's
handlers per key unless it has its own; ``hints.force_flow`` naming the run's own flow goes on with the run,
inside a sub-flow too. Run on the built-in states and on the statekit re-implementation (``states``)."""

from __future__ import annotations

from typing import Any

from mcp_engine.runtime.execution import ExecutionService, Hints
from mcp_engine.runtime.turn import APOLOGY
from tests.turnkit import TENANT, condition, end, flow, go, on, talk, texts, wait

INTENTS = {
    "help": {"patterns": ["^help"]},
    "cancel": {"patterns": ["^cancel"]},
    "yes": {"patterns": ["^yes"]},
    "no": {"patterns": ["^no"]},
}


def shop(error_state: bool = True) -> dict[str, Any]:
    """The calling flow: its handlers are the ones the sub-flow inherits."""
    handlers: dict[str, Any] = {
        "intents": {
            "help": {"target_state": "shop_help", "resume": True},
            "cancel": {"target_state": "cancelled"},
        },
        "no_match": {"response": "Shop: pardon?", "max_consecutive": 2, "target_state": "human"},
    }
    if error_state:
        handlers["error_state"] = "oops"
    trigger = {"type": "trigger_flow", "flow_id": "address", "return_state": "thanks"}
    return flow(
        "start",
        {
            "start": wait(on("any_input", "thanks", actions=[trigger])),
            "thanks": end("Thanks, {{ slots.city }}."),
            "shop_help": end("Shop help."),
            "cancelled": end("Cancelled."),
            "human": end("A human will call."),
            "oops": end("Shop oops."),
        },
        flow_id="shop",
        intents=INTENTS,
        global_handlers=handlers,
    )


def address(**own_handlers: Any) -> dict[str, Any]:
    """The sub-flow: a city, then a yes/no; "no" leads to a dead end."""
    return flow(
        "ask_city",
        {
            "ask_city": {
                "type": "slot_filling",
                "config": {
                    "required_slots": ["city"],
                    "validation_rules": {"city": "text"},
                    "prompts": {"city": "City?"},
                },
                "transitions": [on("slot_filled", "confirm")],
            },
            "confirm": {
                "type": "intent",
                "config": {"intent_patterns": ["yes", "no"]},
                "entry_actions": [{"type": "send_message", "text": "{{ slots.city }}, right?"}],
                "transitions": [on("intent_match", "done", "yes"), on("intent_match", "broken", "no")],
            },
            "broken": condition(go("done", "false")),
            "done": end(),
            "address_help": end("Address help."),
        },
        flow_id="address",
        intents=INTENTS,
        global_handlers=own_handlers,
    )


async def publish(engine: ExecutionService, parent: dict[str, Any], sub: dict[str, Any]) -> None:
    await engine.catalogue.publish_document(sub)
    await engine.catalogue.publish_document(parent, make_default=True)


async def test_a_callers_intent_handler_leaves_the_sub_flow(engine: ExecutionService) -> None:
    await publish(engine, shop(), address())
    asked, cancelled = await talk(engine, "c1", "go", "cancel")
    assert (texts(asked), asked["flow_id"]) == (["City?"], "address")
    # "cancel" is not taken as the city: the caller's handler applies, in the caller's flow
    assert (texts(cancelled), cancelled["flow_id"], cancelled["current_state"]) == (
        ["Cancelled."],
        "shop",
        "cancelled",
    )
    state = await engine.get_state(TENANT, "c1")
    assert state["return_stack"] == []
    assert state["run"]["completed"] is True
    assert state["slots"] == {}


async def test_a_callers_resume_handler_comes_back_into_the_sub_flow(engine: ExecutionService) -> None:
    await publish(engine, shop(), address())
    _, helped, city = await talk(engine, "c1", "go", "help", "Paris")
    assert (texts(helped), helped["flow_id"], helped["current_state"]) == (
        ["Shop help.", "City?"],
        "address",
        "ask_city",
    )
    assert (texts(city), city["current_state"]) == (["Paris, right?"], "confirm")
    [done] = await talk(engine, "c1", "yes")
    assert (texts(done), done["flow_id"]) == (["Thanks, Paris."], "shop")


async def test_the_sub_flows_own_handlers_win_per_key(engine: ExecutionService) -> None:
    own = address(
        intents={"help": {"target_state": "address_help", "resume": True}},
        no_match={"response": "Address: pardon?", "max_consecutive": 5},
    )
    await publish(engine, shop(), own)
    replies = await talk(engine, "c1", "go", "help", "Paris", "bananas", "cancel")
    assert [texts(r) for r in replies] == [
        ["City?"],
        ["Address help.", "City?"],  # its own help handler
        ["Paris, right?"],
        ["Address: pardon?"],  # its own no_match
        ["Cancelled."],  # it has no cancel handler: the caller's applies
    ]


async def test_no_match_and_error_state_are_inherited(engine: ExecutionService) -> None:
    await publish(engine, shop(), address())
    replies = await talk(engine, "c1", "go", "Paris", "bananas", "apples")
    assert [texts(r) for r in replies[2:]] == [["Shop: pardon?"], ["A human will call."]]
    assert replies[-1]["flow_id"] == "shop"

    replies = await talk(engine, "c2", "go", "Paris", "no")  # "no" leads the sub-flow to a dead end
    assert (texts(replies[-1]), replies[-1]["flow_id"]) == (["Shop oops."], "shop")
    state = await engine.get_state(TENANT, "c2")
    assert state["return_stack"] == []
    assert state["error_count"] == 1


async def test_without_any_error_state_the_run_starts_again_in_its_own_flow(engine: ExecutionService) -> None:
    await publish(engine, shop(error_state=False), address())
    replies = await talk(engine, "c1", "go", "Paris", "no")
    assert texts(replies[-1]) == [APOLOGY]
    assert (replies[-1]["flow_id"], replies[-1]["current_state"]) == ("shop", "start")
    assert (await engine.get_state(TENANT, "c1"))["return_stack"] == []


# --- hints.force_flow ---------------------------------------------------------------------------


async def test_force_flow_naming_the_runs_flow_goes_on_in_the_sub_flow(engine: ExecutionService) -> None:
    await publish(engine, shop(), address())
    replies = await talk(engine, "c1", "go", "Paris", "yes", hints=Hints(force_flow="shop"))
    assert [(r["flow_id"], r["current_state"]) for r in replies] == [
        ("address", "ask_city"),
        ("address", "confirm"),  # not a restart of "shop" at its initial state
        ("shop", "thanks"),
    ]
    assert texts(replies[-1]) == ["Thanks, Paris."]


async def test_force_flow_naming_another_flow_starts_a_run_of_it(engine: ExecutionService) -> None:
    await publish(engine, shop(), address())
    other = flow("w", {"w": wait(on("any_input", "said")), "said": end("other flow")}, flow_id="other")
    await engine.catalogue.publish_document(other)
    [asked] = await talk(engine, "c1", "go", hints=Hints(force_flow="shop"))
    [switched] = await talk(engine, "c1", "Paris", hints=Hints(force_flow="other"))
    assert (texts(switched), switched["flow_id"]) == (["other flow"], "other")
    state = await engine.get_state(TENANT, "c1")
    assert (state["return_stack"], state["slots"]) == ([], {})
    assert asked["flow_id"] == "address"

"""One message is delivered once (issue 10): the first message of a new run, whatever the state type it
meets; the event consumed by the state that took it; a digression's resume asking again without its
entry actions. Run on the built-in states and on the statekit re-implementation (``states``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from mcp_engine.runtime.execution import ExecutionService
from tests.conftest import States
from tests.turnkit import (
    TENANT,
    condition,
    end,
    flow,
    go,
    history_types,
    on,
    open_engine,
    response,
    say_action,
    serve,
    set_action,
    talk,
    texts,
    wait,
)

RATE = "Rate us from 1 to 5."
COUNT = set_action("n", expression="variables.n + 1")


def rating(**state_fields: Any) -> dict[str, Any]:
    return {
        "type": "slot_filling",
        "config": {
            "required_slots": ["rating"],
            "validation_rules": {"rating": "int:1..5"},
            "prompts": {"rating": RATE},
            "retry_prompts": {"rating": "Only 1 to 5, please."},
            "max_retries": 2,
        },
        "transitions": [on("slot_filled", "thanks")],
        **state_fields,
    }


THANKS = end("Thanks for the {{ slots.rating }}.")
# the state that gets the message counts it: n is how often the message was delivered
COUNTED = {
    "listen": wait(on("any_input", "heard", actions=[COUNT])),
    "heard": response("n={{ variables.n }}", go("listen")),
}

# the first message of a new run, per state type it meets (directly, or after automatic transitions)
FIRST_MESSAGE: dict[str, tuple[dict[str, Any], str, list[str]]] = {
    "slot_filling, an unusable message: the prompt once": (
        {"ask": rating(), "thanks": THANKS},
        "hi",
        [RATE],
    ),
    "slot_filling, an answer: taken once": ({"ask": rating(), "thanks": THANKS}, "4", ["Thanks for the 4."]),
    "response, then slot_filling": (
        {"hello": response("Hello!", go("ask")), "ask": rating(), "thanks": THANKS},
        "hi",
        ["Hello!", RATE],
    ),
    "wait": ({**COUNTED}, "hi", ["n=1"]),
    "response, then wait": ({"hello": response("Hello!", go("listen")), **COUNTED}, "hi", ["Hello!", "n=1"]),
    "condition, then wait": ({"route": condition(go("listen")), **COUNTED}, "hi", ["n=1"]),
    "intent": (
        {
            "pick": {
                "type": "intent",
                "config": {},
                "transitions": [on("intent_match", "chosen", "yes", actions=[COUNT])],
            },
            "chosen": end("yes, n={{ variables.n }}"),
        },
        "yes please",
        ["yes, n=1"],
    ),
    "end: the run ends on entry and the message is not answered again": (
        {"closed": end("We are closed today.")},
        "hi",
        ["We are closed today."],
    ),
    "response, then end": (
        {"hello": response("Hello!", go("closed")), "closed": end("Bye.")},
        "hi",
        ["Hello!", "Bye."],
    ),
}


@pytest.mark.parametrize("case", FIRST_MESSAGE, ids=list(FIRST_MESSAGE))
async def test_the_first_message_of_a_run_is_delivered_once(engine: ExecutionService, case: str) -> None:
    states, message, expected = FIRST_MESSAGE[case]
    initial = next(iter(states))
    document = flow(initial, states, intents={"yes": {"patterns": ["^yes"]}}, variables={"n": 0})
    await engine.catalogue.publish_document(document, make_default=True)
    [reply] = await talk(engine, "c1", message)
    assert texts(reply) == expected
    types = await history_types(engine, "c1")
    assert types.count("message_in") == 1
    assert "no_match" not in types
    assert "slot_invalid" not in types  # nothing was asked before the first message: it is no retry
    state = await engine.get_state(TENANT, "c1")
    assert len(state["intent_history"]) <= 1  # classified once at most


async def test_an_unusable_first_message_is_not_a_retry(engine: ExecutionService) -> None:
    transitions = [on("slot_filled", "thanks"), go("gave_up", "slot_filling.exhausted")]
    states = {"ask": rating(transitions=transitions), "thanks": THANKS, "gave_up": end("Never mind.")}
    await engine.catalogue.publish_document(flow("ask", states), make_default=True)
    # max_retries 2: "hi" comes before the question, "9" is the first invalid answer, "7" the second
    replies = await talk(engine, "c1", "hi", "9", "7")
    assert [texts(r) for r in replies] == [[RATE], ["Only 1 to 5, please."], ["Never mind."]]


async def test_an_integration_state_first_calls_once_and_the_message_reaches_the_wait_once(
    engine: ExecutionService,
) -> None:
    calls: list[str] = []

    async def status(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response({"open": True})

    async with serve(web.get("/status", status)) as url:
        states = {
            "check": {
                "type": "integration",
                "config": {"integration_id": "shop", "endpoint": "/status"},
                "transitions": [on("integration_success", "listen"), on("integration_error", "listen")],
            },
            **COUNTED,
        }
        document = flow("check", states, integrations={"shop": {"base_url": url}}, variables={"n": 0})
        await engine.catalogue.publish_document(document, make_default=True)
        [reply] = await talk(engine, "c1", "hi")
    assert texts(reply) == ["n=1"]
    assert calls == ["/status"]


async def test_a_third_party_state_that_asks_on_entry_asks_once(statekit: States, tmp_path: Any) -> None:
    """statekit's ``ask`` prompts on entry through the public contract (``TurnView.message_pending``)."""
    engine = await open_engine(tmp_path / "engine.db", statekit.registry())
    try:
        document = flow(
            "name",
            {
                "name": {
                    "type": "ask",
                    "config": {"question": "What's your name?", "variable": "name"},
                    "transitions": [go("greet", "variables.name != null")],
                },
                "greet": end("Hi {{ variables.name }}!"),
            },
            variables={"name": None},
        )
        await engine.catalogue.publish_document(document, make_default=True)
        first, named = await talk(engine, "c1", "hello", "Bo")
        assert texts(first) == ["What's your name?"]  # not asked, then asked again for "hello"
        assert texts(named) == ["Hi Bo!"]
    finally:
        await engine.close()


# --- the event is consumed by the state that took it --------------------------------------------


async def test_the_event_is_consumed_by_the_state_that_took_it(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "listen",
            {
                "listen": wait(
                    # taken on delivery; entering "listen" again must not match the same message again
                    go("listen", "event.text == 'again'", actions=[COUNT]),
                    on("any_input", "check", actions=[set_action("said", expression="event.text")]),
                ),
                "check": condition(
                    go("matched", "event.text == 'go'", priority=1),
                    go("stored", "variables.said == 'go'", priority=2),
                    go("listen", priority=3),
                ),
                "matched": response("event.text seen after it was taken", go("listen")),
                "stored": response("got {{ event.text }} from a variable", go("listen")),
            },
            variables={"n": 0, "said": None},
        ),
        make_default=True,
    )
    again, went = await talk(engine, "c1", "again", "go")
    assert texts(again) == []
    assert (await engine.get_state(TENANT, "c1"))["variables"]["n"] == 1  # no loop up to max_steps
    # a later state's automatic transitions do not see it; its messages may still quote it
    assert texts(went) == ["got go from a variable"]
    assert "error" not in await history_types(engine, "c1")


# --- a digression's resume asks again, without the entry actions --------------------------------


def confirm_flow() -> dict[str, Any]:
    return flow(
        "confirm",
        {
            "confirm": {
                "type": "intent",
                "config": {"intent_patterns": ["yes"]},
                "entry_actions": [
                    COUNT,
                    {"type": "log_event", "event": "asked", "data": {}},
                    say_action("Shall I book it? (asked {{ variables.n }} times)"),
                ],
                "transitions": [on("intent_match", "booked", "yes")],
            },
            "ask": rating(),
            "booked": response("Booked.", go("ask")),
            "thanks": THANKS,
            "help": end("I book tables."),
        },
        intents={"yes": {"patterns": ["^yes"]}, "help": {"patterns": ["^help"]}},
        global_handlers={"intents": {"help": {"target_state": "help", "resume": True}}},
        variables={"n": 0},
    )


async def test_a_resumed_state_asks_again_without_running_its_entry_actions(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(confirm_flow(), make_default=True)
    first, helped = await talk(engine, "c1", "hi", "help")
    assert texts(first)[0] == "Shall I book it? (asked 1 times)"
    # what the state said on entry is said again, as it was: the actions did not run again
    assert texts(helped) == ["I book tables.", "Shall I book it? (asked 1 times)"]
    assert helped["current_state"] == "confirm"
    state = await engine.get_state(TENANT, "c1")
    assert state["variables"]["n"] == 1
    history = await engine.store.history(TENANT, "c1", limit=200)
    assert [e["data"]["type"] for e in history if e["type"] == "action"].count("log_event") == 1
    [booked] = await talk(engine, "c1", "yes")
    assert booked["current_state"] == "ask"


async def test_a_resumed_slot_filling_state_asks_for_the_slot_it_still_misses(
    engine: ExecutionService,
) -> None:
    document = flow(
        "ask",
        {
            "ask": {
                "type": "slot_filling",
                "config": {
                    "required_slots": ["name", "email"],
                    "validation_rules": {"name": "text", "email": "email"},
                    "prompts": {"name": "Your name?", "email": "Thanks {{ slots.name }}. Your email?"},
                    "retry_prompts": {"email": "That is no email address."},
                    "max_retries": 2,
                },
                "transitions": [on("slot_filled", "done"), go("gave_up", "slot_filling.exhausted")],
            },
            "done": end("Done."),
            "gave_up": end("Never mind."),
            "help": end("I need a name and an email address."),
        },
        intents={"help": {"patterns": ["^help"]}},
        global_handlers={"intents": {"help": {"target_state": "help", "resume": True}}},
    )
    await engine.catalogue.publish_document(document, make_default=True)
    replies = await talk(engine, "c1", "Ada", "not one", "help", "still not")
    assert [texts(r) for r in replies] == [
        ["Thanks Ada. Your email?"],
        ["That is no email address."],
        ["I need a name and an email address.", "Thanks Ada. Your email?"],
        ["Never mind."],  # the visit's retry count survived the digression: the second invalid answer
    ]


async def test_a_third_party_state_asks_again_through_its_resume(statekit: States, tmp_path: Any) -> None:
    engine = await open_engine(tmp_path / "engine.db", statekit.registry())
    try:
        document = flow(
            "hello",
            {
                "hello": response("Hello.", go("name")),
                "name": {
                    "type": "ask",
                    "config": {"question": "What's your name?", "variable": "name"},
                    "entry_actions": [COUNT],
                    "transitions": [go("greet", "variables.name != null")],
                },
                "greet": end("Hi {{ variables.name }}!"),
                "help": end("Just your first name."),
            },
            intents={"help": {"patterns": ["^help"]}},
            global_handlers={"intents": {"help": {"target_state": "help", "resume": True}}},
            variables={"name": None, "n": 0},
        )
        await engine.catalogue.publish_document(document, make_default=True)
        first, helped = await talk(engine, "c1", "hey", "help")
        assert texts(first) == ["Hello.", "What's your name?"]
        assert texts(helped) == ["Just your first name.", "What's your name?"]
        assert (await engine.get_state(TENANT, "c1"))["variables"]["n"] == 1
    finally:
        await engine.close()

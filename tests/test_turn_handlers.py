"""Global handlers (SPEC §5): intent handlers and digressions, no-match, errors; and slot filling (§3)."""

from __future__ import annotations

from typing import Any

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.turn import APOLOGY
from tests.turnkit import (
    TENANT,
    condition,
    end,
    flow,
    go,
    on,
    response,
    set_action,
    talk,
    texts,
    wait,
)

INTENTS = {
    "order": {"patterns": [r"\border\b", r"\bpizzas?\b"]},
    "help": {"patterns": [r"\bhelp\b"]},
    "cancel": {"patterns": [r"\bcancel\b"]},
    "faq": {"examples": ["what are your opening hours"]},
}


def slot_state(*transitions: dict[str, Any], **config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "required_slots": ["count", "size"],
        "validation_rules": {"count": "int:1..9", "size": "enum:small,large"},
        "prompts": {"count": "How many?", "size": "Which size?"},
    }
    return {"type": "slot_filling", "config": {**base, **config}, "transitions": list(transitions)}


def handler_flow() -> dict[str, Any]:
    return flow(
        "menu",
        {
            "menu": wait(on("intent_match", "own_help", "help"), on("intent_match", "ask", "order")),
            "own_help": response("menu help", go("menu")),
            "ask": slot_state(on("slot_filled", "done")),
            "done": end("{{ slots.count }} {{ slots.size }}"),
            "helping": response("I can help", go("help_end")),
            "help_end": end(),
            "faq": response("We open at 9", go("menu")),
            "bye": end("bye"),
        },
        intents=INTENTS,
        settings={"confidence_threshold": 0.8},
        global_handlers={
            "intents": {
                "help": {"target_state": "helping", "resume": True},
                "faq": {"target_state": "faq"},
                "cancel": {"target_state": "bye"},
            },
            "no_match": {"response": "Sorry?"},
        },
    )


# --- global intent handlers ---------------------------------------------------------------------


async def test_a_global_intent_is_taken_only_at_or_above_the_threshold(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(handler_flow(), make_default=True)
    [below, above] = await talk(engine, "c1", "when are you opening", "what are the opening hours today")
    assert texts(below) == ["Sorry?"]  # faq 0.77 < 0.8
    assert below["confidence_scores"]["faq"] < 0.8
    assert texts(above) == ["We open at 9"]  # faq 0.82
    assert above["current_state"] == "menu"


async def test_a_state_naming_the_intent_keeps_it_from_the_global_handler(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(handler_flow(), make_default=True)
    [at_menu] = await talk(engine, "c1", "help")
    assert texts(at_menu) == ["menu help"]
    [_, in_form] = await talk(engine, "c2", "order", "help")
    assert texts(in_form) == ["I can help", "How many?"]


async def test_resume_returns_to_the_interrupted_state_and_asks_again(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(handler_flow(), make_default=True)
    replies = await talk(engine, "c1", "I want to order", "2", "help", "large")
    assert [texts(r) for r in replies] == [
        ["How many?"],
        ["Which size?"],
        ["I can help", "Which size?"],  # the digression's end returns to "ask", which re-prompts
        ["2 large"],
    ]
    assert replies[2]["current_state"] == "ask"
    state = await engine.get_state(TENANT, "c1")
    assert state["run"]["completed"] is True
    assert state["return_stack"] == []


async def test_a_handler_without_resume_goes_to_its_target(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(handler_flow(), make_default=True)
    replies = await talk(engine, "c1", "order", "cancel")
    assert texts(replies[1]) == ["bye"]
    state = await engine.get_state(TENANT, "c1")
    assert state["run"]["completed"] is True
    assert state["return_stack"] == []


# --- no-match -----------------------------------------------------------------------------------


def no_match_flow(**handler: Any) -> dict[str, Any]:
    return flow(
        "w",
        {
            "w": wait(on("intent_match", "pong", "ping")),
            "pong": response("pong", go("w")),
            "handoff": end("handing over"),
            "ask": slot_state(on("slot_filled", "handoff")),
        },
        intents={"ping": {"patterns": ["^ping$"]}},
        global_handlers={"no_match": {"response": "Sorry?", **handler}},
    )


async def test_no_match_answers_and_the_nth_miss_enters_the_target(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        no_match_flow(max_consecutive=3, target_state="handoff"), make_default=True
    )
    replies = await talk(engine, "c1", "x", "y", "ping", "x", "y", "z")
    assert [texts(r) for r in replies] == [
        ["Sorry?"],
        ["Sorry?"],
        ["pong"],  # a match resets the count
        ["Sorry?"],
        ["Sorry?"],
        ["handing over"],
    ]
    assert replies[1]["current_state"] == "w"


async def test_a_slot_filling_re_prompt_is_not_a_no_match(engine: ExecutionService) -> None:
    document = no_match_flow(max_consecutive=1, target_state="handoff")
    document["initial_state"] = "ask"
    await engine.catalogue.publish_document(document, make_default=True)
    # an unusable first message gets the prompt once; the answers that follow are not misses either
    replies = await talk(engine, "c1", "blah", "3", "medium")
    assert [texts(r) for r in replies] == [["How many?"], ["Which size?"], ["Which size?"]]
    assert replies[-1]["current_state"] == "ask"
    history = await engine.store.history(TENANT, "c1", limit=100)
    assert not [e for e in history if e["type"] == "no_match"]


# --- slot filling -------------------------------------------------------------------------------


async def test_several_slots_from_one_utterance_and_extraction_on_entry(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "menu",
            {
                "menu": {
                    "type": "intent",
                    "config": {"intent_patterns": ["order"]},
                    "transitions": [on("intent_match", "ask", "order")],
                },
                "ask": slot_state(on("slot_filled", "done")),
                "done": end("{{ slots.count }} {{ slots.size }}"),
            },
            intents=INTENTS,
        ),
        make_default=True,
    )
    # the message that matched "order" in "menu" also fills both slots when "ask" is entered
    [entry] = await talk(engine, "c1", "two large pizzas")
    assert texts(entry) == ["2 large"]
    # in the state: one utterance fills both
    [_, at_ask] = await talk(engine, "c2", "order", "three small ones")
    assert texts(at_ask) == ["3 small"]


async def test_the_prompted_text_slot_takes_the_whole_text(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "ask",
            {
                "ask": {
                    "type": "slot_filling",
                    "config": {
                        "required_slots": ["name"],
                        "validation_rules": {"name": "text"},
                        "prompts": {"name": "Your name?"},
                    },
                    "transitions": [on("slot_filled", "hi")],
                },
                "hi": end("Hi {{ slots.name }}!"),
            },
        ),
        make_default=True,
    )
    [reply] = await talk(engine, "c1", "Ada Lovelace")
    assert texts(reply) == ["Hi Ada Lovelace!"]  # the first message is the answer, delivered once


def retry_flow(with_exhausted_transition: bool) -> dict[str, Any]:
    transitions = [on("slot_filled", "done")]
    if with_exhausted_transition:
        transitions.append(go("give_up", "slot_filling.exhausted"))
    return flow(
        "ask",
        {
            "ask": slot_state(
                *transitions, max_retries=2, retry_prompts={"count": "A number from 1 to 9, please."}
            ),
            "done": end("done"),
            "give_up": end("giving up"),
            "oops": end("oops {{ context.error_count }}"),
        },
        global_handlers={"error_state": "oops"},
    )


async def test_the_second_invalid_answer_exhausts_the_slot(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(retry_flow(with_exhausted_transition=True), make_default=True)
    # "x" comes before anything was asked: it gets the prompt, and is not an invalid answer
    replies = await talk(engine, "c1", "x", "42", "50")
    assert [texts(r) for r in replies] == [["How many?"], ["A number from 1 to 9, please."], ["giving up"]]


async def test_exhaustion_without_a_transition_goes_to_the_error_handler(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(retry_flow(with_exhausted_transition=False), make_default=True)
    replies = await talk(engine, "c1", "x", "42", "50")
    assert [texts(r) for r in replies] == [["How many?"], ["A number from 1 to 9, please."], ["oops 1"]]
    history = await engine.store.history(TENANT, "c1", limit=100)
    assert [e["data"]["kind"] for e in history if e["type"] == "error"] == ["retries_exhausted"]


# --- errors -------------------------------------------------------------------------------------


def error_flow(error_state: bool, max_steps: int = 25) -> dict[str, Any]:
    handlers = {"error_state": "oops"} if error_state else {}
    return flow(
        "start",
        {
            # the route reads the message from a variable: the event is consumed by the state that took it
            "start": wait(on("any_input", "route", actions=[set_action("said", expression="event.text")])),
            "route": condition(
                go("stuck", "variables.said == 'stuck'"),
                go("loop_a", "variables.said == 'loop'"),
                go("start", actions=[set_action("seen", expression="variables.seen + 1")]),
            ),
            "stuck": condition(go("start", "false")),  # a dead end
            # a loop with a way out the validator cannot rule out (seen is never negative)
            "loop_a": condition(go("loop_b")),
            "loop_b": condition(go("start", "variables.seen < 0"), go("loop_a")),
            "oops": response("oops ({{ variables.seen }} seen)", go("start")),
        },
        variables={"seen": 0, "said": None},
        settings={"max_steps": max_steps},
        global_handlers=handlers,
    )


async def test_a_dead_end_goes_to_the_error_state_keeping_the_context(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(error_flow(error_state=True), make_default=True)
    replies = await talk(engine, "c1", "a", "b", "stuck")
    assert texts(replies[-1]) == ["oops (2 seen)"]
    state = await engine.get_state(TENANT, "c1")
    assert state["current_state"] == "start"
    assert state["error_count"] == 1
    assert state["variables"] == {"seen": 2, "said": "stuck"}
    history = await engine.store.history(TENANT, "c1", limit=100)
    assert [e["data"]["kind"] for e in history if e["type"] == "error"] == ["dead_end"]


async def test_without_an_error_state_the_apology_and_back_to_the_initial_state(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(error_flow(error_state=False), make_default=True)
    replies = await talk(engine, "c1", "a", "stuck", "again")
    assert texts(replies[1]) == [APOLOGY]
    assert replies[1]["current_state"] == "start"
    state = await engine.get_state(TENANT, "c1")
    assert state["error_count"] == 1
    assert state["user_id"] == "u1"
    assert state["run"]["completed"] is False
    assert replies[2]["current_state"] == "start"  # the conversation goes on


async def test_a_loop_beyond_max_steps_is_reported_and_recovered(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(error_flow(error_state=True, max_steps=6), make_default=True)
    replies = await talk(engine, "c1", "a", "loop", "loop")
    assert texts(replies[1]) == ["oops (1 seen)"]
    assert texts(replies[2]) == ["oops (1 seen)"]
    state = await engine.get_state(TENANT, "c1")
    assert state["error_count"] == 2
    assert state["current_state"] == "start"
    history = await engine.store.history(TENANT, "c1", limit=200)
    assert [e["data"]["kind"] for e in history if e["type"] == "error"] == ["loop", "loop"]

"""The turn (SPEC §3-§4): entering the initial state, response templates, input and automatic transitions,
priorities, the built-in conditions, and the order of actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mcp_engine import Action, TurnView, hookimpl
from mcp_engine.runtime.execution import ExecutionService
from tests.conftest import States
from tests.turnkit import (
    TENANT,
    closed_port,
    condition,
    end,
    flow,
    go,
    history_types,
    msg,
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

ORDER_INTENTS = {
    "order": {"examples": ["I want to order a pizza"]},
    "help": {"patterns": [r"\bhelp\b"]},
}


def test_the_states_under_test_are_the_builtins_or_their_re_implementation(
    engine: ExecutionService, states: States
) -> None:
    for name in ("intent", "wait"):
        provider = engine.registry.state_types.providers[name]
        assert provider.distribution == ("mcp-engine" if states.plugin is None else "mcp-engine-statekit")


# --- entering the initial state -----------------------------------------------------------------


async def test_a_new_conversation_enters_the_initial_state_before_its_first_message(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(
        flow(
            "hello",
            {
                "hello": response(
                    "hello, seen={{ variables.seen }}, event={{ event.text }}",
                    go("listen"),
                    entry_actions=[set_action("seen", 1), say_action("entry")],
                ),
                "listen": wait(on("any_input", "echo")),
                "echo": response("got {{ event.text }}", go("listen")),
            },
        ),
        make_default=True,
    )
    [reply] = await talk(engine, "c1", "hi")
    # entry actions, then the state runs (without the message), then the message is delivered
    assert texts(reply) == ["entry", "hello, seen=1, event=", "got hi"]
    assert reply["current_state"] == "listen"
    [reply] = await talk(engine, "c1", "again")
    assert texts(reply) == ["got again"]


async def test_response_templates_are_chosen_by_the_message_channel(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "a",
            {
                "a": response({"web": "a-web", "default": "a-default"}, go("b")),
                "b": response({"sms": "b-sms", "voice": "b-voice"}, go("w")),
                "w": wait(on("any_input", "a")),
            },
        ),
        make_default=True,
    )

    async def first(conversation: str, channel: str) -> list[str]:
        return texts(await engine.process_message(TENANT, conversation, msg("x", channel=channel)))

    # channel -> that template, else default, else the first; the message reaches "w" and loops once
    assert await first("web", "web") == ["a-web", "b-sms", "a-web", "b-sms"]
    assert await first("voice", "voice") == ["a-default", "b-voice", "a-default", "b-voice"]
    assert await first("sms", "sms") == ["a-default", "b-sms", "a-default", "b-sms"]


async def test_a_conversation_answers_on_the_channel_of_the_current_message(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(
        flow(
            "w",
            {"w": wait(on("any_input", "a")), "a": response({"web": "web", "sms": "sms"}, go("w"))},
        ),
        make_default=True,
    )
    first = await engine.process_message(TENANT, "c1", msg("x", channel="web"))
    assert texts(first) == ["web"]
    second = await engine.process_message(TENANT, "c1", msg("x", channel="sms"))
    assert texts(second) == ["sms"]


async def test_response_attributes_travel_with_the_message(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "card",
            {
                "card": response("look", go("w"), response_type="card", delay_ms=1500, typing_indicator=True),
                "w": wait(on("any_input", "plain")),
                "plain": response("plain", go("w")),
            },
        ),
        make_default=True,
    )
    [reply] = await talk(engine, "c1", "x")
    assert reply["messages"][0] == {
        "type": "text",
        "text": "look",
        "attributes": {"response_type": "card", "delay_ms": "1500", "typing_indicator": "true"},
    }
    assert reply["messages"][1]["attributes"] == {"response_type": "text"}


# --- input and automatic transitions, priorities ------------------------------------------------


async def test_automatic_transitions_are_evaluated_on_entry_input_ones_only_on_a_message(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(
        flow(
            "w",
            {
                "w": wait(on("any_input", "r")),
                # any_input comes first but is an input condition: on entry only the expression counts
                "r": response("R", on("any_input", "input", priority=1), go("auto", priority=2)),
                "auto": response("auto", on("any_input", "input")),
                "input": end("input"),
            },
        ),
        make_default=True,
    )
    [first, second] = await talk(engine, "c1", "one", "two")
    assert texts(first) == ["R", "auto"]
    assert first["current_state"] == "auto"  # a response state with an input transition waits
    assert texts(second) == ["input"]


async def test_lower_priority_first_ties_in_document_order(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "w",
            {
                "w": wait(on("any_input", "branch")),
                "branch": condition(
                    go("c", priority=50),
                    go("b", priority=10),
                    go("a", priority=10),
                    go("d"),  # default priority 100
                ),
                "a": end("a"),
                "b": end("b"),
                "c": end("c"),
                "d": end("d"),
            },
        ),
        make_default=True,
    )
    [reply] = await talk(engine, "c1", "x")
    assert texts(reply) == ["b"]


# --- conditions ---------------------------------------------------------------------------------


def intent_flow(threshold: float | None = None, fallback: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"intent_patterns": ["order", "help"]}
    if threshold is not None:
        config["confidence_threshold"] = threshold
    if fallback is not None:
        config["fallback_intent"] = fallback
    return flow(
        "menu",
        {
            "menu": {
                "type": "intent",
                "config": config,
                "transitions": [
                    on("intent_match", "ordering", "order"),
                    on("low_confidence", "unsure"),
                    go("fallback", "intent.name == 'help' and intent.confidence < 0.7"),
                ],
            },
            "ordering": end("order {{ intent.confidence }}"),
            "unsure": end("unsure {{ intent.name }}"),
            "fallback": end("fallback"),
        },
        intents=ORDER_INTENTS,
    )


@pytest.mark.parametrize(
    ("threshold", "text", "expected"),
    [
        (None, "I want to order a pizza", "order 1.0"),
        (None, "I would like to order pizza", "order 0.79"),  # 0.79 >= the flow's 0.7
        (0.9, "I would like to order pizza", "unsure order"),  # the state's own threshold
        (None, "bananas are yellow", "unsure order"),
    ],
)
async def test_intent_match_and_low_confidence_follow_the_threshold(
    engine: ExecutionService, threshold: float | None, text: str, expected: str
) -> None:
    await engine.catalogue.publish_document(intent_flow(threshold), make_default=True)
    [reply] = await talk(engine, "c1", text)
    assert texts(reply)[0].startswith(expected)
    assert reply["confidence_scores"]["order"] > reply["confidence_scores"].get("help", 0.0)


async def test_below_the_threshold_the_intent_becomes_the_fallback_intent(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(intent_flow(fallback="help"), make_default=True)
    [reply] = await talk(engine, "c1", "bananas are yellow")
    # low_confidence still holds (and comes first); intent.name is the fallback
    assert texts(reply) == ["unsure help"]
    state = await engine.get_state(TENANT, "c1")
    assert state["intent"]["name"] == "help"
    assert state["intent_history"] == ["help"]


def slot_flow(crust_priority: int) -> dict[str, Any]:
    return flow(
        "ask",
        {
            "ask": {
                "type": "slot_filling",
                "config": {
                    "required_slots": ["size", "count"],
                    "optional_slots": ["crust"],
                    "validation_rules": {
                        "size": "enum:small,large",
                        "count": "int:1..9",
                        "crust": "enum:thin,thick",
                    },
                    "prompts": {"size": "Size?", "count": "How many?"},
                },
                "transitions": [
                    on("slot_filled", "all", priority=5),
                    on("slot_filled", "crusty", "crust", priority=crust_priority),
                ],
            },
            "all": end("all {{ slots.size }} {{ slots.count }}"),
            "crusty": end("crust {{ slots.crust }}"),
        },
    )


async def test_slot_filled_with_and_without_a_value(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(slot_flow(crust_priority=1), make_default=True)
    # the first message answers the first prompt (it is not asked for first: issue 10)
    replies = await talk(engine, "c1", "large", "3 thin")
    assert [texts(r) for r in replies] == [["How many?"], ["crust thin"]]
    replies = await talk(engine, "c2", "large", "3")  # no crust: every required slot is filled
    assert [texts(r) for r in replies] == [["How many?"], ["all large 3"]]


async def test_a_slot_filling_state_left_in_the_same_turn_does_not_ask(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(slot_flow(crust_priority=10), make_default=True)
    [reply] = await talk(engine, "c1", "thin please")
    assert texts(reply) == ["crust thin"]


async def test_expressions_see_event_text_and_variables(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(
        flow(
            "w",
            {
                "w": wait(
                    go("secret", "lower(event.text) == 'open sesame'"),
                    go("counted", "variables.tries >= 2", actions=[set_action("tries", 0)]),
                    on("any_input", "w", actions=[set_action("tries", expression="variables.tries + 1")]),
                ),
                "secret": end("open"),
                "counted": end("tries exhausted"),
            },
            variables={"tries": 0},
        ),
        make_default=True,
    )
    replies = await talk(engine, "c1", "a", "b", "c", "OPEN Sesame")
    # "b" sets tries to 2 in the any_input transition's actions; re-entering "w" evaluates its automatic
    # transitions. "c" starts a new run (tries back to 0); "OPEN Sesame" matches on delivery.
    assert [texts(r) for r in replies] == [[], ["tries exhausted"], [], ["open"]]


async def test_integration_success_and_network_error(engine: ExecutionService) -> None:
    async def balance(request: web.Request) -> web.Response:
        return web.json_response({"data": {"balance": int(request.query["n"]) * 10}})

    no_retry = {"max_retries": 0, "backoff_ms": 0}
    async with serve(web.get("/balance", balance)) as url:
        await engine.catalogue.publish_document(
            flow(
                "w",
                {
                    "w": wait(on("any_input", "call")),
                    "call": {
                        "type": "integration",
                        "config": {
                            "integration_id": "bank",
                            "endpoint": "/balance",
                            "request_mapping": {"n": "event.text"},
                            "response_mapping": {"variables.balance": "$.data.balance"},
                        },
                        "transitions": [
                            on("integration_error", "timeout", "timeout", priority=1),
                            on("integration_error", "network", "network", priority=2),
                            on("integration_success", "ok", priority=3),
                        ],
                    },
                    "ok": response("balance {{ variables.balance }}", go("w")),
                    "network": response("network down", go("w")),
                    "timeout": response("timeout", go("w")),
                },
                integrations={
                    "bank": {"type": "rest", "base_url": url, "retry_policy": no_retry},
                    "down": {
                        "type": "rest",
                        "base_url": f"http://127.0.0.1:{closed_port()}",
                        "retry_policy": no_retry,
                    },
                },
            ),
            make_default=True,
        )
        [ok] = await talk(engine, "c1", "4")
        assert texts(ok) == ["balance 40"]
        state = await engine.get_state(TENANT, "c1")
        assert state["integration_results"]["bank"] == {"data": {"balance": 40}}

        document = (await engine.store.published(TENANT, "f")).document  # type: ignore[union-attr]
        document["version"] = "1.0.1"
        document["states"]["call"]["config"]["integration_id"] = "down"
        await engine.catalogue.publish_document(document)
        [failed] = await talk(engine, "c2", "4")
        assert texts(failed) == ["network down"]


# --- actions ------------------------------------------------------------------------------------


async def test_exit_then_transition_then_entry_actions(engine: ExecutionService) -> None:
    def trace(step: str) -> list[dict[str, Any]]:
        return [set_action("trace", expression=f"variables.trace + '{step};'"), say_action(step)]

    await engine.catalogue.publish_document(
        flow(
            "a",
            {
                "a": wait(
                    on("any_input", "b", actions=trace("transition")),
                    exit_actions=trace("exit"),
                ),
                "b": response("state b: {{ variables.trace }}", go("w"), entry_actions=trace("entry")),
                "w": wait(on("any_input", "a")),
            },
            variables={"trace": ""},
        ),
        make_default=True,
    )
    [reply] = await talk(engine, "c1", "go")
    assert texts(reply) == ["exit", "transition", "entry", "state b: exit;transition;entry;"]
    assert reply["actions_performed"] == ["set_variable", "send_message"] * 3


class Explode(Action):
    name = "explode"
    description = "Always fails (tests)."

    async def run(self, turn: TurnView) -> None:
        raise RuntimeError("boom")


class ExplodingPlugin:
    @hookimpl
    def mcp_engine_actions(self) -> list[type[Action]]:
        return [Explode]


async def test_a_failing_action_is_logged_and_skipped(tmp_path: Path, states: States) -> None:
    engine = await open_engine(tmp_path / "engine.db", states.registry(ExplodingPlugin()))
    try:
        await engine.catalogue.publish_document(
            flow(
                "w",
                {
                    "w": wait(on("any_input", "next")),
                    "next": response(
                        "after",
                        go("w"),
                        entry_actions=[say_action("before"), {"type": "explode"}, set_action("x", 1)],
                    ),
                },
            ),
            make_default=True,
        )
        [reply] = await talk(engine, "c1", "go")
        assert texts(reply) == ["before", "after"]
        assert reply["actions_performed"] == ["send_message", "set_variable"]
        state = await engine.get_state(TENANT, "c1")
        assert state["variables"] == {"x": 1}
        assert state["current_state"] == "w"
        history = await engine.store.history(TENANT, "c1", limit=100)
        errors = [e["data"] for e in history if e["type"] == "error"]
        assert errors == [{"kind": "action_failed", "action": "explode", "message": "boom"}]
        assert "error" in await history_types(engine, "c1")
    finally:
        await engine.close()

"""The seed's state config fields: ``personalization`` (response), ``context_aware`` (intent) and an
integration's ``error_handling``: what each does in a turn, and the bad values each refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mcp_engine import IntentClassifier, IntentScore, hookimpl
from mcp_engine.flow.validate import validate_data
from mcp_engine.plugin_manager import create_plugin_manager
from mcp_engine.registry import Registry
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from tests.turnkit import TENANT, closed_port, flow, go, on, open_engine, response, serve, texts, wait


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    engine = await open_engine(tmp_path / "fields.db")
    try:
        yield engine
    finally:
        await engine.close()


async def send(
    engine: ExecutionService, conversation: str, text: str, profile: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    message = InboundMessage(text=text, user_id="u1", user_profile=profile, **kw)
    return await engine.process_message(TENANT, conversation, message)


def problems(document: dict[str, Any], registry: Registry | None = None) -> list[tuple[str, str]]:
    return [
        (p.pointer, p.message) for p in validate_data(document, registry).problems if p.severity == "error"
    ]


# --- personalization ----------------------------------------------------------------------------


def greeting(personalization: Any) -> dict[str, Any]:
    hello = response(
        {"default": "Hello.", "voice": "Hello (voice)."}, go("w"), personalization=personalization
    )
    return flow("w", {"w": wait(on("any_input", "hello")), "hello": hello})


async def test_personalization_picks_the_variant_of_the_profile_field(engine: ExecutionService) -> None:
    personalization = {
        "profile_field": "account.tier",
        "variants": {
            "gold": {"default": "Welcome back, {{ user_profile.name }}!", "voice": "Gold voice."},
            "3": {"default": "Level three."},
            "true": {"default": "Flagged."},
        },
    }
    await engine.catalogue.publish_document(greeting(personalization), make_default=True)
    cases = [
        ({"name": "Ada", "account": {"tier": "gold"}}, "default", "Welcome back, Ada!"),
        ({"account": {"tier": "gold"}}, "voice", "Gold voice."),
        ({"account": {"tier": 3.0}}, "default", "Level three."),  # gRPC's Struct makes numbers doubles
        ({"account": {"tier": True}}, "default", "Flagged."),
        ({"account": {"tier": "silver"}}, "default", "Hello."),  # no variant: the state's own templates
        ({"account": {"tier": "silver"}}, "voice", "Hello (voice)."),
        ({"account": "not an object"}, "default", "Hello."),
        ({}, "default", "Hello."),
    ]
    for i, (profile, channel, expected) in enumerate(cases):
        reply = await send(engine, f"c{i}", "hi", profile, channel=channel)
        assert texts(reply) == [expected], (profile, channel)


async def test_personalization_true_is_the_seed_default(engine: ExecutionService) -> None:
    document = flow(
        "w",
        {
            "w": wait(on("any_input", "hi")),
            "hi": response("Hi {{ user_profile.name }}", go("w"), personalization=True),
        },
    )
    await engine.catalogue.publish_document(document, make_default=True)
    assert texts(await send(engine, "c1", "hi", {"name": "Bo"})) == ["Hi Bo"]


@pytest.mark.parametrize(
    ("personalization", "pointer", "says"),
    [
        (False, "/states/hello/config/personalization", "cannot be turned off"),
        ({"variants": {"a": {"default": "x"}}}, "/states/hello/config/personalization/profile_field", ""),
        ({"profile_field": "tier", "variants": {}}, "/states/hello/config/personalization/variants", ""),
        ({"profile_field": "a..b", "variants": {"a": {"default": "x"}}}, "", "pattern"),
        ({"profile_field": "tier", "variants": {"a": {"default": "{{ x"}}}, "", "does not parse"),
        ({"profile_field": "tier", "variants": {"a": {"default": "x"}}, "by": "tier"}, "", "unknown field"),
    ],
)
def test_bad_personalization_is_refused(personalization: Any, pointer: str, says: str) -> None:
    found = problems(greeting(personalization))
    assert found, personalization
    assert any(
        p.startswith(pointer or "/states/hello/config/personalization") and says in m for p, m in found
    )


# --- context_aware ------------------------------------------------------------------------------


def ordering(context_aware: Any) -> dict[str, Any]:
    ask = {
        "type": "intent",
        "config": {"context_aware": context_aware},
        "transitions": [on("intent_match", "ok", "order")],
    }
    return flow(
        "ask",
        {"ask": ask, "ok": response("Order taken.", go("ask"))},
        intents={"order": {"patterns": [r"\bpizza\b"]}, "bye": {"patterns": [r"\bbye\b"]}},
    )


@pytest.mark.parametrize(("context_aware", "matched"), [(True, True), (2, True), (1, False), (False, False)])
async def test_context_aware_classifies_with_the_earlier_messages(
    engine: ExecutionService, context_aware: Any, matched: bool
) -> None:
    await engine.catalogue.publish_document(ordering(context_aware), make_default=True)
    await send(engine, "c1", "a pizza")  # taken by itself
    reply = await send(engine, "c1", "hello")  # no pizza in it, but one two messages back
    reply = await send(engine, "c1", "make it large")
    assert (texts(reply) == ["Order taken."]) is matched, texts(reply)
    if matched:
        assert reply["confidence_scores"]["order"] == pytest.approx(0.9)  # the context counts for less
    context = await engine.get_state(TENANT, "c1")
    assert ("recent_messages" in context) is bool(context_aware)
    if context_aware:
        said = [m["text"] for m in context["recent_messages"] if m["role"] == "user"]
        assert said == ["a pizza", "hello", "make it large"][-len(said) :]
        assert len(said) <= 4  # bounded by the most any state looks back, plus one


async def test_a_message_that_says_it_by_itself_outranks_the_context(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(ordering(True), make_default=True)
    await send(engine, "c1", "a pizza")
    reply = await send(engine, "c1", "bye now")
    assert reply["confidence_scores"]["bye"] == 1.0
    assert reply["confidence_scores"]["order"] < 1.0


class Blind(IntentClassifier):
    """A third-party classifier that does not read context: it is never handed any."""

    name = "blind"
    calls: list[tuple[Any, ...]] = []

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        Blind.calls.append((text, tuple(candidates)))
        return [IntentScore("order", 1.0)] if "pizza" in text else []


class BlindPlugin:
    @hookimpl
    def mcp_engine_intent_classifiers(self) -> list[type[IntentClassifier]]:
        return [Blind]


async def test_a_classifier_that_does_not_read_context_is_unaffected(tmp_path: Path) -> None:
    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(BlindPlugin())
    engine = await open_engine(tmp_path / "blind.db", Registry.from_plugin_manager(pm))
    try:
        document = ordering(True)
        document["settings"] = {"classifier": "blind"}
        await engine.catalogue.publish_document(document, make_default=True)
        await send(engine, "c1", "a pizza")
        reply = await send(engine, "c1", "make it large")
        assert texts(reply) != ["Order taken."]
        assert [text for text, _ in Blind.calls] == ["a pizza", "make it large"]
        assert "recent_messages" not in await engine.get_state(TENANT, "c1")
    finally:
        await engine.close()


@pytest.mark.parametrize("value", [0, 0.5, 21, -1, "yes please", [3]])
def test_bad_context_aware_is_refused(value: Any) -> None:
    assert any(p.startswith("/states/ask/config/context_aware") for p, _ in problems(ordering(value)))


# --- error_handling -----------------------------------------------------------------------------


def calling(base_url: str, error_handling: dict[str, Any], *own: dict[str, Any]) -> dict[str, Any]:
    call = {
        "type": "integration",
        "config": {"integration_id": "api", "endpoint": "/status", "error_handling": error_handling},
        "transitions": [on("integration_success", "fine"), *own],
    }
    return flow(
        "w",
        {
            "w": wait(on("any_input", "call")),
            "call": call,
            "fine": response("All good.", go("w")),
            "later": response("Try again later.", go("w")),
            "handoff": response("Passing you to a person.", go("w")),
            "own": response("The state's own transition.", go("w")),
        },
        integrations={"api": {"type": "rest", "base_url": base_url, "retry_policy": {"max_retries": 0}}},
    )


HANDLING = {
    "http_5xx": {"response": "The service is down ({{ context.current_state }}).", "target_state": "later"},
    "default": {"response": "Something went wrong.", "target_state": "handoff"},
}


async def test_error_handling_replies_and_goes_to_the_kinds_target(engine: ExecutionService) -> None:
    status = {"code": 503}

    async def api(request: web.Request) -> web.Response:
        return web.json_response({}, status=status["code"])

    async with serve(web.get("/status", api)) as url:
        await engine.catalogue.publish_document(calling(url, HANDLING), make_default=True)
        reply = await send(engine, "c1", "check")
        assert texts(reply) == ["The service is down (call).", "Try again later."]
        events = await engine.store.history(TENANT, "c1", limit=100)
        taken = [e["data"] for e in events if e["type"] == "transition" and e["data"]["from"] == "call"]
        assert taken == [{"from": "call", "to": "later", "index": 1}]  # after the state's own one
        status["code"] = 404  # a kind with no entry of its own: default
        reply = await send(engine, "c1", "check")
        assert texts(reply) == ["Something went wrong.", "Passing you to a person."]
        status["code"] = 200
        assert texts(await send(engine, "c1", "check")) == ["All good."]


async def test_error_handling_covers_network_errors_and_yields_to_own_transitions(
    engine: ExecutionService,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    await engine.catalogue.publish_document(calling(url, HANDLING), make_default=True)
    assert texts(await send(engine, "c1", "check")) == ["Something went wrong.", "Passing you to a person."]
    own = on("integration_error", "own", "network")
    await engine.catalogue.publish_document({**calling(url, HANDLING, own), "version": "1.1.0"})
    assert texts(await send(engine, "c2", "check")) == ["The state's own transition."]


@pytest.mark.parametrize(
    ("handling", "pointer", "says"),
    [
        (
            {"teapot": {"target_state": "later"}},
            "/states/call/config/error_handling",
            "unknown error kind 'teapot'",
        ),
        (
            {"timeout": {"target_state": "nowhere"}},
            "/states/call/config/error_handling/timeout/target_state",
            "nowhere",
        ),
        ({"timeout": {"response": "x"}}, "/states/call/config/error_handling/timeout/target_state", ""),
        (
            {"timeout": {"target_state": "later", "reply": "x"}},
            "/states/call/config/error_handling/timeout",
            "unknown field",
        ),
        (
            {"timeout": {"target_state": "later", "response": "{{ x"}},
            "/states/call/config/error_handling/timeout/response",
            "parse",
        ),
    ],
)
def test_bad_error_handling_is_refused(handling: dict[str, Any], pointer: str, says: str) -> None:
    found = problems(calling("http://127.0.0.1:9", handling))
    assert any(p.startswith(pointer) and says in m for p, m in found), found


def test_error_handling_is_drawn_after_the_state_s_own_transitions() -> None:
    from mcp_engine.flow.graph import graph_data
    from mcp_engine.registry import default_registry

    registry = default_registry()
    flow_model = validate_data(calling("http://127.0.0.1:9", HANDLING), registry).raise_for_errors()
    edges = [e for e in graph_data(flow_model, registry)["edges"] if e["state"] == "call"]
    assert [(e["transition"], e["target"], e["lines"][0]) for e in edges] == [
        (0, "st_fine", "integration_success"),
        (1, "st_later", "integration_error: http_5xx"),  # numbered as the turn's transition events
        (2, "st_handoff", "integration_error"),
    ]

"""The seed's external services against real aiohttp servers on 127.0.0.1: the Model Orchestrator as the
``http`` intent classifier and as ``response``'s ``generate``, and the Adaptor Service as an integration
type. None of them can make a turn fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mcp_engine.flow.validate import validate_data
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import FakeIntegration, engine_settings, start_engine
from tests.turnkit import TENANT, flow, go, msg, on, response, texts, wait


@dataclass
class Model:
    """A scripted Model Orchestrator: ``/intents`` and ``/generate``; ``modes`` is what the next calls do
    ("ok", "fail" (500), "hang"), the last one repeating."""

    modes: list[str] = field(default_factory=lambda: ["ok"])
    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def mode(self) -> str:
        return self.modes.pop(0) if len(self.modes) > 1 else self.modes[0]

    async def intents(self, request: web.Request) -> web.Response:
        self.bodies.append(("intents", await request.json()))
        mode = self.mode()
        if mode == "hang":
            await asyncio.sleep(30)
        if mode == "fail":
            return web.Response(status=500)
        return web.json_response({"intents": [{"name": "order", "confidence": 0.93}]})

    async def generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(("generate", body))
        mode = self.mode()
        if mode == "hang":
            await asyncio.sleep(30)
        if mode == "fail":
            return web.Response(status=500)
        return web.json_response({"text": f"Generated for {body['intent']}"})


@pytest.fixture
async def model() -> AsyncIterator[tuple[Model, FakeIntegration]]:
    async with FakeIntegration() as fake:
        found = Model()
        fake.route("POST", "/intents", found.intents)
        fake.route("POST", "/generate", found.generate)
        yield found, fake


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    started = await start_engine(SQLiteStore(str(tmp_path / "e.db")), settings=engine_settings())
    yield started
    await started.close()


def ordering_flow(url: str, **classifier: Any) -> dict[str, Any]:
    return flow(
        "ask",
        {
            "ask": {
                "type": "intent",
                "config": {},
                "transitions": [on("intent_match", "ordered", "order"), on("intent_match", "helped", "help")],
            },
            "ordered": response("ordering ({{ '%.2f' | format(intent.confidence) }})", go("ask")),
            "helped": response("helping", go("ask")),
        },
        intents={"order": {"examples": ["i want a pizza"]}, "help": {"examples": ["help me"]}},
        settings={
            "classifier": "http",
            "classifier_config": {"url": url, "retries": 0, **classifier},
            "history_messages": 4,
        },
    )


async def say(engine: ExecutionService, text: str, conversation: str = "c1") -> list[str]:
    return texts(await engine.process_message(TENANT, conversation, msg(text)))


async def test_the_orchestrator_gets_text_history_user_context_and_preferences(
    engine: ExecutionService, model: tuple[Model, FakeIntegration]
) -> None:
    service, fake = model
    document = ordering_flow(fake.url("/intents"), model_preferences={"model": "small", "temperature": 0})
    await engine.catalogue.publish_document(document, make_default=True)
    assert await say(engine, "something vague") == ["ordering (0.93)"]  # the model's intent, not builtin's
    assert await say(engine, "and more") == ["ordering (0.93)"]
    kind, body = service.bodies[-1]
    assert kind == "intents"
    assert body["text"] == "and more"
    assert body["candidates"] == ["order", "help"]
    assert body["conversation_history"] == [
        {"role": "user", "text": "something vague"},
        {"role": "assistant", "text": "ordering (0.93)"},
        {"role": "user", "text": "and more"},
    ]
    assert body["user_context"] == {"user_id": "u1", "channel": "default", "user_profile": {}}
    assert body["model_preferences"] == {"model": "small", "temperature": 0}


async def test_a_failed_attempt_is_retried(
    engine: ExecutionService, model: tuple[Model, FakeIntegration]
) -> None:
    service, fake = model
    service.modes = ["fail", "ok"]
    document = ordering_flow(fake.url("/intents"), retries=1, backoff_ms=1)
    await engine.catalogue.publish_document(document, make_default=True)
    assert await say(engine, "something vague") == ["ordering (0.93)"]
    assert len(service.bodies) == 2


@pytest.mark.parametrize("mode", ["fail", "hang"])
async def test_a_down_or_slow_orchestrator_falls_back_to_builtin_and_opens_its_breaker(
    engine: ExecutionService, model: tuple[Model, FakeIntegration], mode: str
) -> None:
    service, fake = model
    service.modes = [mode]
    breaker = {"failure_threshold": 2, "reset_timeout_ms": 60_000}
    document = ordering_flow(fake.url("/intents"), timeout_ms=200, circuit_breaker=breaker)
    await engine.catalogue.publish_document(document, make_default=True)
    for _ in range(3):
        assert await say(engine, "help me") == ["helping"]  # builtin: the example matches
    assert len(service.bodies) == 2  # the third message found the breaker open: no call


async def test_an_unreachable_orchestrator_never_fails_the_turn(engine: ExecutionService) -> None:
    async with FakeIntegration() as gone:
        url = gone.url("/intents")
    await engine.catalogue.publish_document(ordering_flow(url), make_default=True)
    assert await say(engine, "i want a pizza") == ["ordering (1.00)"]


def generating_flow(url: str, timeout_ms: int = 300) -> dict[str, Any]:
    return flow(
        "w",
        {
            "w": wait(on("any_input", "answer")),
            "answer": response(
                "Your order is noted.",
                go("w"),
                generate={"integration_id": "model", "endpoint": "/generate", "timeout_ms": timeout_ms},
            ),
        },
        integrations={"model": {"base_url": url, "retry_policy": {"max_retries": 0}}},
        settings={"history_messages": 2},
    )


@pytest.mark.parametrize(("mode", "said"), [("ok", "Generated for None"), ("fail", None), ("hang", None)])
async def test_generate_asks_the_orchestrator_and_falls_back_to_the_template(
    engine: ExecutionService, model: tuple[Model, FakeIntegration], mode: str, said: str | None
) -> None:
    service, fake = model
    service.modes = [mode]
    await engine.catalogue.publish_document(generating_flow(fake.url()), make_default=True)
    assert await say(engine, "two pizzas") == [said or "Your order is noted."]
    kind, body = service.bodies[0]
    assert kind == "generate"
    assert body["template"] == "Your order is noted."
    assert body["text"] == "two pizzas"
    assert body["conversation_history"] == [{"role": "user", "text": "two pizzas"}]
    history = await engine.store.history(TENANT, "c1", limit=100)
    [call] = [e["data"] for e in history if e["type"] == "integration_call"]
    assert call["integration_id"] == "model"
    assert call["outcome"] == ("success" if mode == "ok" else "error")


def test_a_classifier_url_that_is_not_http_is_refused_with_its_pointer() -> None:
    problems = {p.pointer: p.message for p in validate_data(ordering_flow("ftp://127.0.0.1/x")).errors}
    assert "not an http(s) URL" in problems["/settings/classifier_config/url"]


async def test_generate_names_a_declared_integration() -> None:
    document = generating_flow("http://127.0.0.1:9")
    document["integrations"] = {}
    problems = {p.pointer: p.message for p in validate_data(document).errors}
    assert "/states/answer/config/generate/integration_id" in problems


@dataclass
class Adaptor:
    """A scripted Adaptor Service at ``/execute``: answers what ``answers`` says, in order."""

    answers: list[int | dict[str, Any]] = field(default_factory=list)  # a status, or a JSON body
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def execute(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return web.Response(status=answer) if isinstance(answer, int) else web.json_response(answer)


def adaptor_flow(url: str) -> dict[str, Any]:
    return flow(
        "w",
        {
            "w": wait(on("any_input", "lookup")),
            "lookup": {
                "type": "integration",
                "config": {
                    "integration_id": "crm",
                    "endpoint": "/accounts/{{ event.text }}",
                    "method": "GET",
                    "request_mapping": {"fields": "'name,tier'"},
                    "response_mapping": {"variables.name": "$.name"},
                },
                "transitions": [
                    on("integration_success", "found"),
                    on("integration_error", "unknown", "http_4xx"),
                    on("integration_error", "broken", "mapping"),
                    on("integration_error", "down"),
                ],
            },
            "found": response("hello {{ variables.name }}", go("w")),
            "unknown": response("no such account", go("w")),
            "broken": response("unreadable answer", go("w")),
            "down": response("the CRM is down", go("w")),
        },
        integrations={
            "crm": {
                "type": "adaptor",
                "base_url": url,
                "headers": {"Authorization": "Bearer ${env:ADAPTOR_TOKEN}"},
                "timeout_ms": 2000,
                "retry_policy": {"max_retries": 1, "backoff_ms": 1},
            }
        },
    )


@pytest.fixture
async def adaptor(tmp_path: Path) -> AsyncIterator[tuple[Adaptor, str, ExecutionService]]:
    env = {"ADAPTOR_TOKEN": "t0ken"}
    engine = await start_engine(SQLiteStore(str(tmp_path / "a.db")), settings=engine_settings(), env=env)
    async with FakeIntegration() as fake:
        service = Adaptor()
        fake.route("POST", "/execute", service.execute)
        await engine.catalogue.publish_document(adaptor_flow(fake.url("/execute")), make_default=True)
        yield service, fake.url("/execute"), engine
        assert all(r.headers["Authorization"] == "Bearer t0ken" for r in fake.received)
    await engine.close()


async def test_the_adaptor_service_gets_execute_integration_and_its_data_is_mapped(
    adaptor: tuple[Adaptor, str, ExecutionService],
) -> None:
    service, _, engine = adaptor
    service.answers = [{"success": True, "data": {"name": "Ada", "tier": "gold"}}]
    assert await say(engine, "42") == ["hello Ada"]
    assert service.bodies == [
        {
            "integration_id": "crm",
            "endpoint": "/accounts/42",
            "method": "GET",
            "request_data": {"fields": "name,tier"},
            "timeout_ms": 2000,
        }
    ]


@pytest.mark.parametrize(
    ("answers", "said", "calls"),
    [
        ([{"success": False, "error": "no account 7", "error_kind": "http_4xx"}], "no such account", 1),
        ([{"success": False, "error": "CRM answered 502"}], "the CRM is down", 1),
        ([503, {"success": True, "data": {"name": "Bo"}}], "hello Bo", 2),
        ([{"data": {"name": "Bo"}}], "unreadable answer", 1),
        ([500], "the CRM is down", 2),
    ],
)
async def test_the_adaptor_services_failures_route_like_a_rest_call(
    adaptor: tuple[Adaptor, str, ExecutionService], answers: list[Any], said: str, calls: int
) -> None:
    service, _, engine = adaptor
    service.answers = answers
    assert await say(engine, "7") == [said]
    assert len(service.bodies) == calls

"""The http classifier against a real aiohttp server on 127.0.0.1, and its fallback to builtin."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from mcp_engine import IntentScore, Services
from mcp_engine.flow.models import Intent
from mcp_engine.plugins.nlu.http import HttpClassifier, HttpConfig
from mcp_engine.runtime.services import EngineServices
from mcp_engine.testing import FakeIntegration

INTENTS = {
    "order_pizza": Intent(examples=["two large pizzas please"], patterns=[r"\bpizzas?\b"]),
    "help": Intent(examples=["help", "what can you do?"]),
    "cancel": Intent(examples=["cancel"]),
}
SECRET = "s3cr3t-token"


class FakeNlu:
    """A scripted NLU service: records what it was sent, answers with ``mode``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((await request.json(), dict(request.headers)))
        if self.mode == "slow":
            await asyncio.sleep(1)
        if self.mode == "error":
            return web.Response(status=500, text="boom")
        if self.mode == "malformed":
            return web.Response(text="{not json", content_type="application/json")
        if self.mode == "wrong_shape":
            return web.json_response({"intents": [{"name": "help"}]})
        return web.json_response(
            {
                "intents": [
                    {"name": "help", "confidence": 0.2},
                    {"name": "not_a_candidate", "confidence": 0.99},
                    {"name": "order_pizza", "confidence": 0.9},
                    {"name": "cancel", "confidence": 0.4},
                ]
            }
        )


@pytest.fixture
def nlu(fake_integration: FakeIntegration) -> tuple[FakeNlu, str]:
    fake = FakeNlu()
    fake_integration.route("POST", "/classify", fake.handle)
    return fake, fake_integration.url("/classify")


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    services = EngineServices(env={"NLU_TOKEN": SECRET})
    yield services
    await services.close()


def make(url: str, services: Services, **config: Any) -> HttpClassifier:
    return HttpClassifier(INTENTS, HttpConfig(url=url, **config), services)


async def test_answer_is_filtered_to_candidates_and_ranked(
    nlu: tuple[FakeNlu, str], services: Services
) -> None:
    fake, url = nlu
    scores = await make(url, services).classify("two large pizzas", ["help", "order_pizza"])
    assert [(s.name, s.confidence) for s in scores] == [("order_pizza", 0.9), ("help", 0.2)]
    body, _ = fake.requests[0]
    assert body["text"] == "two large pizzas"
    assert body["candidates"] == ["help", "order_pizza"]
    assert set(body["intents"]) == {"help", "order_pizza"}
    assert body["intents"]["order_pizza"]["examples"] == ["two large pizzas please"]


async def test_intents_can_be_left_out_of_the_request(nlu: tuple[FakeNlu, str], services: Services) -> None:
    fake, url = nlu
    await make(url, services, send_intents=False).classify("hi", ["help"])
    assert "intents" not in fake.requests[0][0]


async def test_secret_header_is_resolved_per_call_and_never_logged(
    nlu: tuple[FakeNlu, str], services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = nlu
    fake.mode = "error"
    classifier = make(url, services, headers={"Authorization": "Bearer ${env:NLU_TOKEN}", "X-Static": "1"})
    with caplog.at_level(logging.DEBUG):
        await classifier.classify("help", ["help"])
    headers = fake.requests[0][1]
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["X-Static"] == "1"
    assert SECRET not in caplog.text
    assert classifier.config.headers["Authorization"] == "Bearer ${env:NLU_TOKEN}"  # never stored resolved


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("slow", "timeout: no answer within 0.1 s"),
        ("error", "http_5xx: HTTP 500"),
        ("malformed", "not JSON"),
        ("wrong_shape", "confidence"),
    ],
)
async def test_failures_fall_back_to_builtin(
    nlu: tuple[FakeNlu, str], services: Services, caplog: pytest.LogCaptureFixture, mode: str, reason: str
) -> None:
    fake, url = nlu
    fake.mode = mode
    with caplog.at_level(logging.WARNING):
        scores = await make(url, services, timeout_ms=100).classify("I want pizzas", ["help", "order_pizza"])
    assert scores[0] == IntentScore("order_pizza", 1.0)  # builtin: pattern match
    assert "using the builtin classifier" in caplog.text
    assert reason in caplog.text


async def test_unreachable_service_falls_back(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    async with FakeIntegration() as server:
        url = server.url("/classify")
    # nothing listens on that port any more
    with caplog.at_level(logging.WARNING):
        scores = await make(url, services).classify("help", ["help", "cancel"])
    assert scores[0].name == "help"
    assert "builtin" in caplog.text


async def test_missing_secret_falls_back_without_calling(nlu: tuple[FakeNlu, str]) -> None:
    fake, url = nlu
    services = EngineServices(env={})
    try:
        classifier = make(url, services, headers={"Authorization": "Bearer ${env:NLU_TOKEN}"})
        scores = await classifier.classify("help", ["help"])
    finally:
        await services.close()
    assert scores[0].name == "help"
    assert fake.requests == []


async def test_context_aware_sends_the_earlier_messages(nlu: tuple[FakeNlu, str], services: Services) -> None:
    fake, url = nlu
    classifier = make(url, services)
    assert classifier.reads_context
    await classifier.classify_in_context("make it large", ["order_pizza"], {}, ["a pizza", "hello"])
    await classifier.classify("make it large", ["order_pizza"])
    (with_context, _), (alone, _) = fake.requests
    assert with_context["context"] == ["a pizza", "hello"]
    assert "context" not in alone
    fake.mode = "error"  # the builtin fallback reads the context too
    ranked = await classifier.classify_in_context("make it large", ["order_pizza"], {}, ["two pizzas"])
    assert ranked[0] == IntentScore("order_pizza", 0.9)

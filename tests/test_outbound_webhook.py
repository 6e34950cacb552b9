"""The outbound channel against a real, flaky receiver on 127.0.0.1: timer messages POSTed to the tenant's
``outbound_webhook``, signed, retried with backoff from the stored delivery (also by an engine started
after the first one stopped), delivered at least once and deduplicated by the receiver by delivery id."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.store.base import Tenant
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import FakeIntegration, engine_settings, start_engine
from tests.engine_fixtures import rest_client
from tests.turnkit import TENANT, flow, go, on, response, talk, wait

SECRET = "whsec-0123456789abcdef"
LATER = 3600.0
ROUNDS = 10  # bounded retry loops


@dataclass
class Receiver:
    """Fails the first ``failures`` requests (500, after reading them: as if its answer was lost), then
    accepts; keeps each delivery once, by ``X-MCP-Delivery-Id``."""

    failures: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if len(self.requests) <= self.failures:
            return web.Response(status=500)
        self.kept.setdefault(request.headers["X-MCP-Delivery-Id"], orjson.loads(body))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    async with FakeIntegration() as fake:
        found = Receiver()
        fake.route("POST", "/hook", found.handle)
        yield found, fake.url("/hook")


def timer_flow() -> dict[str, Any]:
    return flow(
        "w",
        {
            "w": wait(on("timeout", "late"), on("any_input", "w"), timeout_ms=60_000),
            "late": response("Are you there?", go("parked")),
            "parked": wait(on("any_input", "w")),
        },
    )


@asynccontextmanager
async def running(path: Path, **settings: Any) -> AsyncIterator[ExecutionService]:
    """An engine on the SQLite file ``path`` (retrying webhooks without waiting), closed afterwards."""
    values = {"webhook_backoff_ms": 1, **settings}
    engine = await start_engine(SQLiteStore(str(path)), settings=engine_settings(**values))
    try:
        yield engine
    finally:
        await engine.close()


async def fire_timer(engine: ExecutionService, url: str, secret: str | None = SECRET) -> None:
    await engine.store.put_tenant(Tenant(TENANT, outbound_webhook=url, webhook_secret=secret))
    await engine.catalogue.publish_document(timer_flow(), make_default=True)
    await talk(engine, "c1", "hi")
    await fire_due_timers(engine, now=time.time() + LATER)
    await engine.outbound.drain()


def round_time(n: int) -> float:
    """The clock of retry round ``n``: a second more each round, past any backoff the engine chose
    (``webhook_backoff_ms`` 1), however fast the rounds run."""
    return time.time() + LATER + n


async def retry_until_delivered(engine: ExecutionService, receiver: Receiver) -> None:
    for n in range(1, ROUNDS + 1):
        if receiver.kept:
            return
        await engine.outbound.deliver_due(now=round_time(n))


async def test_a_flaky_receiver_gets_the_signed_message_once_by_id(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.failures = 2
    async with running(tmp_path / "e.db") as engine:
        await fire_timer(engine, url)
        assert len(hook.requests) == 1  # the first attempt, right after the timer's turn
        await retry_until_delivered(engine, hook)
        assert await engine.store.due_deliveries(time.time() + 10 * LATER) == []  # acknowledged: gone
        await engine.outbound.deliver_due(now=time.time() + LATER)
    assert len(hook.requests) == 3
    ids = {headers["X-MCP-Delivery-Id"] for headers, _ in hook.requests}
    assert len(ids) == 1  # stable across retries
    assert [headers["X-MCP-Attempt"] for headers, _ in hook.requests] == ["1", "2", "3"]
    assert len({body for _, body in hook.requests}) == 1  # the same bytes every time
    for headers, body in hook.requests:
        signed = headers["X-MCP-Timestamp"].encode() + b"." + body
        expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-MCP-Signature"], f"sha256={expected}")
    [kept] = hook.kept.values()
    assert kept["delivery_id"] in ids
    assert (kept["tenant_id"], kept["conversation_id"]) == (TENANT, "c1")
    assert [m["text"] for m in kept["messages"]] == ["Are you there?"]


async def test_a_delivery_pending_when_the_engine_stopped_is_made_by_the_next_one(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.failures = 1
    async with running(tmp_path / "e.db") as first:
        await fire_timer(first, url)
    assert len(hook.requests) == 1
    assert not hook.kept
    async with running(tmp_path / "e.db") as second:
        await retry_until_delivered(second, hook)
    assert len(hook.requests) == 2
    assert hook.requests[0][0]["X-MCP-Delivery-Id"] == hook.requests[1][0]["X-MCP-Delivery-Id"]
    assert list(hook.kept) == [hook.requests[0][0]["X-MCP-Delivery-Id"]]


async def test_a_receiver_that_never_accepts_is_given_up_after_the_last_attempt(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    hook.failures = 1000
    async with running(tmp_path / "e.db", webhook_max_attempts=3) as engine:
        await fire_timer(engine, url, secret=None)
        for n in range(1, ROUNDS + 1):
            await engine.outbound.deliver_due(now=round_time(n))
        assert engine.outbound.abandoned == 1
        assert await engine.store.due_deliveries(time.time() + 10 * LATER) == []
    assert len(hook.requests) == 3
    assert "X-MCP-Signature" not in hook.requests[0][0]  # no secret: unsigned


async def test_the_webhook_secret_is_write_only_and_checked(tmp_path: Path) -> None:
    async with running(tmp_path / "e.db") as engine:
        async with rest_client(engine) as client:
            short = await client.put("/v2/tenants/t1", json={"webhook_secret": "short"})
            assert short.status == 400
            assert "webhook_secret" in await short.text()
            answer = await client.put(
                "/v2/tenants/t1", json={"outbound_webhook": "http://127.0.0.1:9/h", "webhook_secret": SECRET}
            )
            assert answer.status == 201
            shown = await answer.json()
            assert shown["webhook_secret_set"] is True
            assert SECRET not in await answer.text()
            kept = await client.put("/v2/tenants/t1", json={"default_flow": None})
            assert (await kept.json())["webhook_secret_set"] is True  # left out: kept
        tenant = await engine.store.get_tenant("t1")
        assert tenant is not None
        assert tenant.webhook_secret == SECRET

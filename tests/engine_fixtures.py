"""The example flows in tests, on the engine's test kit (``mcp_engine.testing``).

``example_flow(name)`` gives a fresh copy of an example document (to change before publishing);
``open_engine`` publishes every example flow (or the given documents) for tenant "demo", none of them
the tenant's default; ``ExampleBackend`` is the bank and helpdesk those flows call, on a
``FakeIntegration``; ``rest_client`` serves an engine's REST app to aiohttp's test client;
``Conversation`` is the kit's, for tenant "demo".
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from mcp_engine.api.rest.app import create_app
from mcp_engine.auth import Authenticator, AuthMode
from mcp_engine.config import EngineSettings
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import Conversation as KitConversation
from mcp_engine.testing import FakeIntegration, Received, start_engine
from mcp_engine.testing import (
    engine_settings as engine_settings,  # the kit's, for the tests importing it here
)

TENANT = "demo"
FLOWS_DIR = Path(__file__).parent.parent / "examples" / "flows"
EXAMPLE_FLOWS = ("pizza", "bank", "support", "collect_contact")
TOKEN = "s3cret-bank-token"
HELPDESK_KEY = "helpdesk-key"
ENV = {"BANK_API_TOKEN": TOKEN, "HELPDESK_API_KEY": HELPDESK_KEY}
EXAMPLE_SECRETS = "*:" + ",".join(ENV)  # the example flows' secrets, granted to every tenant


@cache
def _example(name: str) -> str:
    return (FLOWS_DIR / f"{name}.json").read_text(encoding="utf-8")


def example_flow(name: str) -> dict[str, Any]:
    """A fresh copy of ``examples/flows/<name>.json`` (safe to change)."""
    document: dict[str, Any] = json.loads(_example(name))
    return document


class ExampleBackend:
    """The core-banking API and the helpdesk the example flows call, served by ``fake`` (which records
    every request in ``received``).

    Accounts: 00000404 is unknown (404), 55555503 fails with 503 ``fail_first`` times before answering,
    77777777 is slow while ``slow`` is set (its handler is cancelled when the engine gives up waiting);
    every balance takes ``delay_s`` first.
    """

    def __init__(self, fake: FakeIntegration, delay_s: float = 0.0) -> None:
        self.fake = fake
        self.delay_s = delay_s
        self.attempts: dict[str, int] = {}
        self.fail_first = 2
        self.slow = True
        self.release = asyncio.Event()  # never set: a slow answer waits until the engine hangs up
        fake.route("GET", "/api/v1/accounts/{account}/balance", self.balance)
        fake.route("POST", "/helpdesk/tickets", self.ticket)

    @property
    def base(self) -> str:
        return self.fake.url()

    @property
    def requests(self) -> list[Received]:
        return self.fake.received

    @property
    def balance_calls(self) -> int:
        return sum(self.attempts.values())

    async def balance(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        self.attempts[account] = self.attempts.get(account, 0) + 1
        await asyncio.sleep(self.delay_s)
        if account == "00000404":
            return web.json_response({"error": "no such account"}, status=404)
        if account == "55555503" and self.attempts[account] <= self.fail_first:
            return web.json_response({"error": "maintenance"}, status=503)
        if account == "77777777" and self.slow:
            await self.release.wait()
        return web.json_response({"data": {"balance": 1234.5, "as_of": "2024-05-01"}})

    async def ticket(self, request: web.Request) -> web.Response:
        return web.json_response({"ticket": {"id": "T-1001"}}, status=201)


@asynccontextmanager
async def open_engine(
    db_path: Path,
    documents: Mapping[str, dict[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
    settings: EngineSettings | None = None,
    publish: bool = True,
) -> AsyncIterator[ExecutionService]:
    """An started engine on ``db_path``; every example flow is published unless ``publish`` is False.
    Without ``settings`` its tenants are granted the example flows' secrets (set or not: ``env``).

    ``documents`` replaces example flows by name (e.g. a bank flow pointing at a test server).
    """
    settings = settings or engine_settings(grant_secrets=EXAMPLE_SECRETS)
    engine = await start_engine(SQLiteStore(str(db_path)), settings=settings, env=env)
    try:
        if publish:
            for name in EXAMPLE_FLOWS:
                document = (documents or {}).get(name) or example_flow(name)
                await engine.catalogue.publish_document(copy.deepcopy(document))
        yield engine
    finally:
        await engine.close()


@asynccontextmanager
async def rest_client(
    engine: ExecutionService,
    mode: AuthMode = "off",
    limiter: Limiter | None = None,
    admin_key: str | None = None,
    **options: Any,
) -> AsyncIterator[TestClient[Any, Any]]:
    """The real REST app over ``engine`` with the real ``Authenticator`` in ``mode``, on 127.0.0.1."""
    app = create_app(engine, Authenticator(engine.store, mode, admin_key), limiter or Limiter(8), **options)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def texts(reply: Mapping[str, Any]) -> list[str]:
    """The texts of a reply's (or a fired timer's) messages, in order."""
    return [message["text"] for message in reply["messages"]]


class Conversation(KitConversation):
    """One conversation of tenant "demo" on ``flow`` (the kit's ``Conversation``): the first message names
    the flow, the rest follow the conversation (SPEC §7: the flow the conversation is on)."""

    def __init__(self, engine: ExecutionService, conversation_id: str, flow: str, channel: str = "default"):
        super().__init__(engine, TENANT, flow, conversation_id, channel)

    async def state(self) -> dict[str, Any]:
        return await self.context()

"""Property-based tests of the live REST app against its own OpenAPI document (schemathesis).

The app runs on a real aiohttp server on 127.0.0.1 (port 0) in a background thread, with auth off and
the example flows published for tenant "demo". Every operation gets a bounded number of generated
requests; none may cause a 5xx, and every response must match the documented status, media type,
headers and schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mcp_engine.api.rest.app import API_VERSION, ROUTES, TITLE, create_app
from mcp_engine.api.rest.routing import openapi_bytes
from mcp_engine.auth import Authenticator
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from tests.engine_fixtures import open_engine

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MESSAGES = "/v2/conversations/{conversation_id}/messages"


class LiveServer:
    """The app on its own event loop in a daemon thread, so schemathesis's synchronous client can call it."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rest-live", daemon=True)
        self.url = ""
        self._engine: AbstractAsyncContextManager[ExecutionService] | None = None
        self._runner: web.AppRunner | None = None

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        self._engine = open_engine(self.db_path)
        engine = await self._engine.__aenter__()
        app = create_app(engine, Authenticator(engine.store, "off", None), Limiter(16))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._engine is not None:
            await self._engine.__aexit__(None, None, None)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("rest-live") / "engine.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# The document the app serves, built from the same route table (``from_fixture`` does not run on pytest 9).
schema = schemathesis.openapi.from_dict(orjson.loads(openapi_bytes(ROUTES, TITLE, API_VERSION)))


def pin_tenant(case: Any) -> None:
    """Act as tenant "demo" (whose flows exist), so generated requests reach the engine, not just auth."""
    case.headers = {**(case.headers or {}), "X-Tenant-ID": "demo"}
    if isinstance(case.query, dict):
        case.query.pop("tenant_id", None)
    if case.operation.path == MESSAGES and isinstance(case.body, dict) and "tenant_id" in case.body:
        case.body["tenant_id"] = "demo"


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: Any, live: LiveServer) -> None:
    pin_tenant(case)
    case.call_and_validate(base_url=live.url, checks=CHECKS)

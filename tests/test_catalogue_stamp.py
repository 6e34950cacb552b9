"""The new-run lookups (a tenant's default flow, a flow's published version) are cached in process, and a
change made through another process is seen from the very next new run: two real ``mcp-engine serve``
processes on one store (the same SQLite file; one PostgreSQL schema + Redis prefix), A serving, B
publishing and changing the tenant's default. Also the stamp itself on both stores, and
``bypass_cache``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.store.base import Store, Tenant
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore
from tests.production_kit import POSTGRES_URI, REDIS_URL, delete_keys, fresh_backing, store_env
from tests.serve_kit import Served, serve
from tests.turnkit import TENANT, end, flow

pytestmark = pytest.mark.slow


def says(text: str, flow_id: str = "greet", version: str = "1.0.0") -> dict[str, Any]:
    return flow("bye", {"bye": end(text)}, flow_id=flow_id, version=version)


@pytest.fixture(params=["embedded", "production"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Both processes on one store: the same SQLite file (ignored by the production store's processes)."""
    async with store_env(request.param, "stamp") as env:
        yield {**env, "MCP_SQLITE_PATH": str(tmp_path / "shared.db")}


@pytest.fixture
def two(tmp_path: Path, shared: dict[str, str]) -> Iterator[tuple[Served, Served]]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "greet.json").write_text(json.dumps(says("one")))
    (flows / "other.json").write_text(json.dumps(says("other", flow_id="other")))
    with ExitStack() as stack:
        a_dir, b_dir = tmp_path / "a", tmp_path / "b"
        a_dir.mkdir()
        b_dir.mkdir()
        first = stack.enter_context(
            serve(a_dir, "--flows", str(flows), "--default-flow", "greet", env=shared)
        )
        second = stack.enter_context(serve(b_dir, env=shared))
        yield first, second


async def say(http: aiohttp.ClientSession, served: Served, conversation: str) -> str:
    async with http.post(
        f"{served.base}/v2/conversations/{conversation}/messages",
        json={"content": {"type": "text", "text": "hi"}},
        headers={"X-Tenant-ID": TENANT},
    ) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["response"]["text"])


async def call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> None:
    async with http.request(method, url, json=body, headers={"X-Tenant-ID": TENANT}) as response:
        assert response.status in (200, 201), await response.text()


async def test_a_publish_and_a_default_changed_in_another_process_count_from_the_next_new_run(
    two: tuple[Served, Served],
) -> None:
    serving, changing = two
    async with aiohttp.ClientSession() as http:
        assert [await say(http, serving, f"c{n}") for n in range(3)] == ["one"] * 3  # cached from c1 on
        await call(http, "POST", f"{changing.base}/v2/flows", says("two", version="1.1.0"))
        await call(http, "POST", f"{changing.base}/v2/flows/greet/versions/1.1.0/publish")
        assert await say(http, serving, "c3") == "two"
        await call(http, "PUT", f"{changing.base}/v2/tenants/{TENANT}", {"default_flow": "other"})
        assert await say(http, serving, "c4") == "other"
        await call(http, "POST", f"{changing.base}/v2/flows/greet/versions/1.0.0/publish")  # a rollback
        await call(http, "PUT", f"{changing.base}/v2/tenants/{TENANT}", {"default_flow": "greet"})
        assert await say(http, serving, "c5") == "one"


@pytest.fixture(params=["embedded", "production"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "embedded":
        opened: Store = SQLiteStore(str(tmp_path / "s.db"))
        await opened.open()
        yield opened
        await opened.close()
        return
    async with fresh_backing("stamp") as name:
        opened = ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        await opened.open()
        yield opened
        await opened.close()
        await delete_keys(name)


async def test_the_stamp_changes_with_every_catalogue_change_and_only_then(store: Store) -> None:
    stamps = [await store.catalogue_stamp()]

    async def changed() -> bool:
        stamps.append(await store.catalogue_stamp())
        return stamps[-1] != stamps[-2]

    await store.put_tenant(Tenant(TENANT, "greet"))
    assert await changed()
    await store.save_flow_version(TENANT, says("one"))
    await store.publish(TENANT, "greet", "1.0.0")
    assert await changed()
    await store.load(TENANT, "c1")
    await store.history(TENANT, "c1")
    assert not await changed()
    await store.delete_flow(TENANT, "greet")
    assert await changed()
    assert stamps[-1] is not None


async def test_bypass_cache_asks_the_store(store: Store) -> None:
    engine = ExecutionService(store)
    await engine.catalogue.publish_document(says("one"), make_default=True)
    asked: list[str] = []
    real = store.published_with_experiment

    async def counted(tenant_id: str, flow_id: str) -> tuple[str | None, str | None]:
        asked.append(flow_id)
        return await real(tenant_id, flow_id)

    store.published_with_experiment = counted  # type: ignore[method-assign]
    try:
        for n in range(3):
            await engine.process_message(TENANT, f"c{n}", InboundMessage(text="hi"))
        assert asked == ["greet"]  # one lookup, then the cache under the same stamp
        await engine.process_message(TENANT, "c9", InboundMessage(text="hi"), Hints(bypass_cache=True))
        assert asked == ["greet", "greet"]
    finally:
        await engine.sinks.drain()

"""The edge (issue 17, finding 9; issue 15, "the edge"): who reads /metrics, no NaN/Infinity stored as
null, and per-tenant request sizes with a clear 413 (too large) or 4xx (bad) naming where and why."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.flow.validate import validate_text
from mcp_engine.security.grants import Grants
from mcp_engine.serve import EngineServer
from mcp_engine.store.base import Tenant
from mcp_engine.testing import engine_settings
from tests.engine_fixtures import example_flow

ADMIN_KEY = "admin-key-of-the-edge-test"
METRICS_TOKEN = "token-prometheus-sends"


async def started(tmp_path: Path, **options: Any) -> EngineServer:
    settings = engine_settings(
        sqlite_path=str(tmp_path / "e.db"), http_port=0, grpc_port=0, enable_visual_designer=False, **options
    )
    server = EngineServer(settings)
    await server.start()
    return server


async def metrics_status(server: EngineServer, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"http://127.0.0.1:{server.http_port}/metrics", headers=headers)
        return response.status


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"auth": "off"}, {None: 200}),  # the default with auth off: public, like everything else
        (
            {"auth": "on", "admin_key": ADMIN_KEY, "metrics_token": METRICS_TOKEN},  # default with auth on
            {None: 401, "wrong": 401, METRICS_TOKEN: 200, ADMIN_KEY: 200},
        ),
        ({"auth": "on", "admin_key": ADMIN_KEY, "metrics": "public"}, {None: 200}),
        ({"auth": "off", "metrics": "protected"}, {None: 401, "anything": 401}),  # no token set: nobody
        ({"auth": "off", "metrics": "off"}, {None: 404}),
    ],
)
async def test_metrics_exposure(
    tmp_path: Path, options: dict[str, Any], expected: dict[str | None, int]
) -> None:
    server = await started(tmp_path, **options)
    try:
        assert {key: await metrics_status(server, key) for key in expected} == expected
    finally:
        await server.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EngineServer]:
    found = await started(tmp_path, auth="off")
    catalogue = found.engine.catalogue
    await catalogue.put_tenant(Tenant("small", grants=Grants(max_body_bytes=2048, max_message_bytes=10)))
    await catalogue.put_tenant(
        Tenant("big", grants=Grants(max_body_bytes=4 * 1024 * 1024, max_message_bytes=2**21))
    )
    for tenant in ("demo", "small", "big"):
        document = copy.deepcopy(example_flow("pizza"))
        document["tenant_id"] = tenant
        await catalogue.publish_document(document, make_default=True)
    yield found
    await found.stop()


async def post(server: EngineServer, path: str, tenant: str, data: bytes) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"http://127.0.0.1:{server.http_port}{path}",
            data=data,
            headers={"X-Tenant-ID": tenant, "Content-Type": "application/json"},
        )
        return response.status, await response.json()


async def test_nan_and_infinity_are_refused_with_their_pointer_not_stored_as_null(
    server: EngineServer,
) -> None:
    document = example_flow("pizza")
    raw = (
        b'{"variables": {"ratio": NaN, "limits": [1, Infinity, -Infinity]},'
        + orjson.dumps({k: v for k, v in document.items() if k != "variables"})[1:]
    )
    for path in ("/v2/flows", "/v2/flows/validate"):
        status, body = await post(server, path, "demo", raw)
        assert status == 400, body
        assert [e["pointer"] for e in body["error"]["details"]["errors"]] == [
            "/variables/limits/1",
            "/variables/limits/2",
            "/variables/ratio",
        ]
    assert [f.version for f in await server.engine.store.list_versions("demo", "pizza")] == [
        document["version"]
    ]
    # a YAML file (`mcp-engine validate`, `serve --flows`) is refused the same way
    result = validate_text("variables: {ratio: .nan, top: .inf}\n", "flow.yaml")
    assert [(p.pointer, p.code, p.line) for p in result.errors if p.code == "non-finite"] == [
        ("/variables/ratio", "non-finite", 1),
        ("/variables/top", "non-finite", 1),
    ]


def message(text: str) -> bytes:
    return orjson.dumps({"content": {"text": text}})


async def test_each_tenant_has_its_own_body_limit(server: EngineServer) -> None:
    large = message("x" * (1536 * 1024))  # 1.5 MiB: over the operator's default (1 MiB)
    status, body = await post(server, "/v2/conversations/c1/messages", "demo", large)
    assert (status, body["error"]["code"], body["error"]["details"]["limit"]) == (
        413,
        "payload_too_large",
        2**20,
    )
    status, body = await post(server, "/v2/conversations/c1/messages", "big", large)
    assert status == 400, body  # the body is accepted; the flow's own max_message_chars refuses the text
    assert "longer than the flow's 4000 characters" in body["error"]["message"]
    status, body = await post(server, "/v2/conversations/c1/messages", "small", message("x" * 3000))
    assert (status, body["error"]["details"]["limit"]) == (413, 2048)
    status, body = await post(server, "/v2/conversations/c1/messages", "small", b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_argument")


async def test_each_tenant_has_its_own_message_limit_on_both_adapters(server: EngineServer) -> None:
    status, body = await post(server, "/v2/conversations/c2/messages", "small", message("hello there!"))
    assert (status, body["error"]["code"]) == (413, "payload_too_large"), body
    assert body["error"]["details"] == {"field": "content.text", "limit": 10}
    status, _ = await post(server, "/v2/conversations/c2/messages", "demo", message("hello there!"))
    assert status == 200
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = mcp_pb2_grpc.MCPEngineStub(channel)
        request = mcp_pb2.ProcessMessageRequest(
            tenant_id="small", conversation_id="c3", content=mcp_pb2.MessageContent(text="hello there!")
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ProcessMessage(request)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "longer than tenant 'small' may send: 10 bytes" in (caught.value.details() or "")

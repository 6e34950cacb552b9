"""Tenant isolation over REST and gRPC with auth on: tenant A's key can neither touch tenant B's flows and
conversations nor learn whether they exist, and requests without a valid key are refused.

"Cannot learn" is checked by asking about B's thing and about a thing nobody has, with A's key: the two
answers must be the same (status, error code, and the message once the ids are blanked out), otherwise
the difference itself tells A what B has.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.api.grpc.server import create_server
from mcp_engine.api.rest.app import create_app
from mcp_engine.auth import Authenticator
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.runtime.limits import Limiter
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import EXAMPLE_SECRETS, engine_settings, example_flow

A, B = "tenant-a", "tenant-b"
B_FLOW, B_CONVERSATION = "bank", "b-conversation"  # B's; A has no flow "bank"
NO_FLOW, NO_CONVERSATION = "nobody-flow", "nobody-conversation"
B_VERSION = example_flow(B_FLOW)["version"]


@dataclass
class World:
    engine: ExecutionService
    auth: Authenticator
    key_a: str
    key_b: str
    revoked_a: str

    async def b_untouched(self) -> None:
        """B's flow is still published and B's conversation still at the version B left it."""
        published = await self.engine.store.published(B, B_FLOW)
        assert published is not None
        assert published.version == B_VERSION
        conversation = await self.engine.store.load(B, B_CONVERSATION)
        assert conversation is not None
        assert conversation.version == 1


def flow_of(tenant: str, name: str) -> dict[str, Any]:
    document = copy.deepcopy(example_flow(name))
    document["tenant_id"] = tenant
    return document


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = engine_settings(grant_secrets=EXAMPLE_SECRETS)
    engine = ExecutionService(SQLiteStore(str(tmp_path / "engine.db")), settings=settings)
    await engine.start()
    auth = Authenticator(engine.store, "on", None)
    keys: dict[str, str] = {}
    for tenant in (A, B):
        await auth.create_tenant(tenant)
        keys[tenant] = (await auth.create_key(tenant))[1]
        await engine.catalogue.publish_document(flow_of(tenant, "pizza"), make_default=True)
    await engine.catalogue.publish_document(flow_of(B, B_FLOW))
    await engine.process_message(B, B_CONVERSATION, InboundMessage(text="hi"))
    revoked_id, revoked = await auth.create_key(A)
    await auth.revoke_key(A, revoked_id)
    yield World(engine, auth, keys[A], keys[B], revoked)
    await engine.close()


def blank(text: str, *ids: str) -> str:
    for one in ids:
        text = text.replace(one, "<id>")
    return text


# --- REST ---------------------------------------------------------------------------------------

MESSAGE = {"content": {"text": "hi"}}


@pytest.fixture
async def rest(world: World) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(world.engine, world.auth, Limiter(10))
    async with TestClient(TestServer(app)) as client:
        yield client


async def answer(
    client: TestClient[Any, Any], method: str, path: str, key: str, **kw: Any
) -> tuple[Any, ...]:
    """(status, error code, error message) of a request with ``key``; 2xx answers give their body."""
    response = await client.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)
    body = await response.json() if response.content_type == "application/json" else await response.text()
    error = body.get("error") if isinstance(body, dict) else None
    if error is None:
        return response.status, None, body
    return response.status, error["code"], error["message"]


# (method, path, json body): "{flow}" and "{conversation}" are filled with B's and with nobody's
REST_PROBES = [
    ("GET", "/v2/flows/{flow}", None),
    ("GET", "/v2/flows/{flow}/versions", None),
    ("GET", "/v2/flows/{flow}/versions/" + B_VERSION, None),
    ("GET", "/v2/flows/{flow}/graph", None),
    ("POST", "/v2/flows/{flow}/versions/" + B_VERSION + "/publish", None),
    ("DELETE", "/v2/flows/{flow}", None),
    ("GET", "/v2/conversations/{conversation}", None),
    ("GET", "/v2/conversations/{conversation}/history", None),
    ("DELETE", "/v2/conversations/{conversation}", None),
    ("POST", "/v2/conversations/fresh/messages", {**MESSAGE, "hints": {"force_flow": "{flow}"}}),
]


def fill(value: Any, flow: str, conversation: str) -> Any:
    if isinstance(value, str):
        return value.format(flow=flow, conversation=conversation)
    if isinstance(value, dict):
        return {k: fill(v, flow, conversation) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body"), REST_PROBES)
async def test_rest_a_cannot_touch_or_detect_bs_things(
    world: World, rest: TestClient[Any, Any], method: str, path: str, body: dict[str, Any] | None
) -> None:
    answers = []
    for flow, conversation in ((B_FLOW, B_CONVERSATION), (NO_FLOW, NO_CONVERSATION)):
        status, code, detail = await answer(
            rest, method, fill(path, flow, conversation), world.key_a, json=fill(body, flow, conversation)
        )
        answers.append((status, code, blank(str(detail), flow, conversation)))
    assert answers[0] == answers[1]
    await world.b_untouched()


async def test_rest_a_message_to_bs_conversation_id_is_as_ones_own_new_one(
    world: World, rest: TestClient[Any, Any]
) -> None:
    to_b = await rest.post(
        f"/v2/conversations/{B_CONVERSATION}/messages", json=MESSAGE, headers=bearer(world.key_a)
    )
    to_nobody = await rest.post(
        f"/v2/conversations/{NO_CONVERSATION}/messages", json=MESSAGE, headers=bearer(world.key_a)
    )
    assert to_b.status == to_nobody.status == 200
    assert (await to_b.json())["current_state"] == (await to_nobody.json())["current_state"]
    await world.b_untouched()


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("GET", "/v2/flows", {"headers": {"X-Tenant-ID": B}}),
        ("GET", f"/v2/flows/{B_FLOW}", {"params": {"tenant_id": B}}),
        ("DELETE", f"/v2/flows/{B_FLOW}", {"headers": {"X-Tenant-ID": B}}),
        ("POST", f"/v2/flows/{B_FLOW}/versions/{B_VERSION}/publish", {"headers": {"X-Tenant-ID": B}}),
        ("GET", f"/v2/conversations/{B_CONVERSATION}", {"headers": {"X-Tenant-ID": B}}),
        ("DELETE", f"/v2/conversations/{B_CONVERSATION}", {"params": {"tenant_id": B}}),
        ("POST", f"/v2/conversations/{B_CONVERSATION}/messages", {"json": {**MESSAGE, "tenant_id": B}}),
        ("POST", "/v2/flows", {"json": flow_of(B, "support")}),
        ("PUT", f"/v2/tenants/{B}", {"json": {"default_flow": B_FLOW}}),
    ],
)
async def test_rest_naming_b_with_as_key_is_refused(
    world: World, rest: TestClient[Any, Any], method: str, path: str, kw: dict[str, Any]
) -> None:
    extra = {name: value for name, value in kw.items() if name != "headers"}
    headers = {**kw.get("headers", {}), **bearer(world.key_a)}
    response = await rest.request(method, path, headers=headers, **extra)
    assert response.status == 403, await response.text()
    assert (await response.json())["error"]["code"] == "permission_denied"
    await world.b_untouched()
    assert await world.engine.store.list_versions(B, "support") == []


@pytest.mark.parametrize("who", ["none", "wrong", "revoked", "not bearer"])
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v2/flows"), ("GET", f"/v2/conversations/{B_CONVERSATION}")]
)
async def test_rest_refuses_requests_without_a_valid_key(
    world: World, rest: TestClient[Any, Any], who: str, method: str, path: str
) -> None:
    headers = {
        "none": {},
        "wrong": bearer("mcpk_000000000000_" + "x" * 43),
        "revoked": bearer(world.revoked_a),
        "not bearer": {"Authorization": world.key_b},
    }[who]
    response = await rest.request(method, path, headers={**headers, "X-Tenant-ID": B})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthenticated"


async def test_rest_bs_own_key_still_works(world: World, rest: TestClient[Any, Any]) -> None:
    response = await rest.get(f"/v2/conversations/{B_CONVERSATION}", headers=bearer(world.key_b))
    assert response.status == 200


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- gRPC ---------------------------------------------------------------------------------------


@pytest.fixture
async def stub(world: World) -> AsyncIterator[mcp_pb2_grpc.MCPEngineStub]:
    server, port = await create_server(world.engine, world.auth, Limiter(10), "127.0.0.1", 0)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield mcp_pb2_grpc.MCPEngineStub(channel)
    await server.stop(None)


def grpc_key(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def rpc(call: Any, request: Any, key: str | None) -> tuple[Any, ...]:
    """(status, error-code trailer, details) of a call; an OK call gives its response."""
    try:
        response = await call(request, metadata=grpc_key(key) if key else None)
    except grpc.aio.AioRpcError as exc:
        code = dict(exc.trailing_metadata() or ()).get("error-code")
        return exc.code(), code, exc.details()
    return grpc.StatusCode.OK, None, response


def grpc_probes(stub: mcp_pb2_grpc.MCPEngineStub, flow: str, conversation: str) -> list[tuple[Any, Any]]:
    hints = mcp_pb2.ProcessingHints(force_flow=flow)
    content = mcp_pb2.MessageContent(text="hi")
    return [
        (stub.GetConversationState, mcp_pb2.GetStateRequest(conversation_id=conversation)),
        (stub.ResetConversation, mcp_pb2.ResetRequest(conversation_id=conversation)),
        (
            stub.ProcessMessage,
            mcp_pb2.ProcessMessageRequest(conversation_id="fresh", content=content, hints=hints),
        ),
    ]


async def test_grpc_a_cannot_touch_or_detect_bs_things(
    world: World, stub: mcp_pb2_grpc.MCPEngineStub
) -> None:
    of_b = grpc_probes(stub, B_FLOW, B_CONVERSATION)
    of_nobody = grpc_probes(stub, NO_FLOW, NO_CONVERSATION)
    for (call, b_request), (_, nobody_request) in zip(of_b, of_nobody, strict=True):
        status_b, code_b, detail_b = await rpc(call, b_request, world.key_a)
        status_n, code_n, detail_n = await rpc(call, nobody_request, world.key_a)
        assert (status_b, code_b) == (status_n, code_n)
        if status_b == grpc.StatusCode.OK:
            assert type(detail_b) is type(detail_n)
        else:
            assert blank(detail_b, B_FLOW, B_CONVERSATION) == blank(detail_n, NO_FLOW, NO_CONVERSATION)
    await world.b_untouched()


async def test_grpc_naming_b_with_as_key_is_refused(world: World, stub: mcp_pb2_grpc.MCPEngineStub) -> None:
    content = mcp_pb2.MessageContent(text="hi")
    for call, request in [
        (stub.GetConversationState, mcp_pb2.GetStateRequest(tenant_id=B, conversation_id=B_CONVERSATION)),
        (stub.ResetConversation, mcp_pb2.ResetRequest(tenant_id=B, conversation_id=B_CONVERSATION)),
        (
            stub.ProcessMessage,
            mcp_pb2.ProcessMessageRequest(tenant_id=B, conversation_id=B_CONVERSATION, content=content),
        ),
    ]:
        status, code, _ = await rpc(call, request, world.key_a)
        assert (status, code) == (grpc.StatusCode.PERMISSION_DENIED, "permission_denied")
    await world.b_untouched()


@pytest.mark.parametrize("who", ["none", "wrong", "revoked"])
async def test_grpc_refuses_calls_without_a_valid_key(
    world: World, stub: mcp_pb2_grpc.MCPEngineStub, who: str
) -> None:
    key = {"none": None, "wrong": "mcpk_000000000000_" + "x" * 43, "revoked": world.revoked_a}[who]
    request = mcp_pb2.GetStateRequest(tenant_id=B, conversation_id=B_CONVERSATION)
    status, code, _ = await rpc(stub.GetConversationState, request, key)
    assert (status, code) == (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")


async def test_grpc_bs_own_key_still_works(world: World, stub: mcp_pb2_grpc.MCPEngineStub) -> None:
    request = mcp_pb2.GetStateRequest(conversation_id=B_CONVERSATION)
    status, _, response = await rpc(stub.GetConversationState, request, world.key_b)
    assert status == grpc.StatusCode.OK
    assert response.conversation_id == B_CONVERSATION

"""The same conversations over gRPC and over REST against one server give the same replies, field by
field (only ``processing_time_ms`` and the conversation id differ): the adapters add nothing and lose
nothing of the engine's reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.config import EngineSettings
from mcp_engine.runtime.services import EngineServices
from mcp_engine.serve import EngineServer
from mcp_engine.testing import FakeIntegration, granted_environment
from tests.serve_kit import ENV, ExampleBackend, flows_folder, grpc_reply

SCRIPTS = {
    "pizza": [
        "I'd like to order a pizza",
        "large",
        "two",
        "12 Main Street",
        "212-555-0198",
        "help",
        "yes please",
    ],
    "bank": ["what's my balance?", "12345678", "no thanks"],
    "support": [
        "my internet is down",
        "still not working",
        "Jane Doe",
        "jane at example",
        "jane@example.com",
        "yes",
    ],
    "support-timeout": ["my internet is down", "timeout", "yes it works"],
}


@pytest.fixture
async def server(tmp_path: Path, fake_integration: FakeIntegration) -> AsyncIterator[EngineServer]:
    backend = ExampleBackend(fake_integration)
    settings = EngineSettings.model_validate(
        {
            "MCP_SQLITE_PATH": str(tmp_path / "e.db"),
            "HTTP_PORT": 0,
            "GRPC_PORT": 0,
            "MCP_AUTH": "off",
            **granted_environment(list(ENV)),
        }
    )
    engine = EngineServer(
        settings, flows_dir=flows_folder(tmp_path / "flows", backend), services=EngineServices(env=ENV)
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def normalised(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k not in ("processing_time_ms", "conversation_id")}


def kind_of(text: str) -> str:
    return "event" if text == "timeout" else "text"


async def over_rest(base: str, name: str, flow: str) -> list[dict[str, Any]]:
    replies = []
    async with aiohttp.ClientSession() as http:
        for i, text in enumerate(SCRIPTS[name]):
            body: dict[str, Any] = {"tenant_id": "demo", "content": {"type": kind_of(text), "text": text}}
            if i == 0:
                body["hints"] = {"force_flow": flow}
            async with http.post(f"{base}/v2/conversations/rest-{name}/messages", json=body) as response:
                assert response.status == 200, await response.text()
                replies.append(await response.json())
    return replies


async def over_grpc(target: str, name: str, flow: str) -> list[dict[str, Any]]:
    replies = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = mcp_pb2_grpc.MCPEngineStub(channel)
        for i, text in enumerate(SCRIPTS[name]):
            reply = await stub.ProcessMessage(
                mcp_pb2.ProcessMessageRequest(
                    tenant_id="demo",
                    conversation_id=f"grpc-{name}",
                    content=mcp_pb2.MessageContent(type=kind_of(text), text=text),
                    hints=mcp_pb2.ProcessingHints(force_flow=flow if i == 0 else ""),
                )
            )
            replies.append(grpc_reply(reply))
    return replies


@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_grpc_and_rest_give_identical_replies(server: EngineServer, name: str) -> None:
    flow = name.split("-")[0]
    rest = await over_rest(f"http://127.0.0.1:{server.http_port}", name, flow)
    grpc_replies = await over_grpc(f"127.0.0.1:{server.grpc_port}", name, flow)
    assert len(rest) == len(grpc_replies) == len(SCRIPTS[name])
    for turn, (by_rest, by_grpc) in enumerate(zip(rest, grpc_replies, strict=True)):
        assert by_rest["conversation_id"] == f"rest-{name}"
        assert by_grpc["conversation_id"] == f"grpc-{name}"
        for field in normalised(by_rest).keys() | normalised(by_grpc).keys():
            assert by_rest.get(field) == by_grpc.get(field), f"turn {turn} ({SCRIPTS[name][turn]!r}): {field}"
    assert rest[-1]["current_state"] in ("order_placed", "goodbye", "resolved")

"""One set of input limits for REST and gRPC (issue 17, finding 8), and an access log no field can forge.

The attack: gRPC took 1 MB conversation ids, 100 k-character user ids and channels, 4 MB of metadata and
``/`` or NUL in ids, all of which REST refuses; a CR/LF in an id wrote a forged access-log line, even on a
401. Both adapters now refuse the same inputs naming the field, and every logged field is escaped.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.logs import TextFormatter
from mcp_engine.serve import EngineServer
from mcp_engine.testing import engine_settings

ADMIN_KEY = "admin-key-of-the-input-limits-test"
BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("conversation_id", {"conversation_id": "c" * 300}, "at most 256 characters"),
    ("conversation_id", {"conversation_id": "a/b"}, "no '/' and no control characters"),
    ("conversation_id", {"conversation_id": "a\x00b"}, "no '/' and no control characters"),
    ("conversation_id", {"conversation_id": "a\r\nb"}, "no '/' and no control characters"),
    ("user_id", {"user_id": "u" * 100_000}, "at most 256 characters"),
    ("user_id", {"user_id": "u\nx"}, "no '/' and no control characters"),
    ("channel", {"channel": "c" * 100_000}, "at most 64 characters"),
    ("metadata", {"metadata": {f"k{i}": "v" for i in range(1000)}}, "at most 64 items"),
    ("metadata.k", {"metadata": {"k": "v" * 5000}}, "at most 4096 characters"),
    ("attributes", {"attributes": {f"k{i}": "v" for i in range(65)}}, "at most 64 items"),
    ("tenant_id", {"tenant_id": "Bad/Tenant"}, "should match pattern"),
]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EngineServer]:
    settings = engine_settings(
        sqlite_path=str(tmp_path / "e.db"), http_port=0, grpc_port=0, auth="on", admin_key=ADMIN_KEY
    )
    engine_server = EngineServer(settings)
    await engine_server.start()
    yield engine_server
    await engine_server.stop()


def grpc_request(fields: dict[str, Any]) -> mcp_pb2.ProcessMessageRequest:
    values = {"tenant_id": "demo", "conversation_id": "c-1", **fields}
    attributes = values.pop("attributes", {})
    return mcp_pb2.ProcessMessageRequest(
        content=mcp_pb2.MessageContent(text="hi", attributes=attributes), **values
    )


def rest_call(fields: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    values = {"conversation_id": "c-1", **fields}
    conversation = values.pop("conversation_id").replace("/", "%2F").replace("\r", "%0D").replace("\n", "%0A")
    body = {"content": {"text": "hi", "attributes": values.pop("attributes", {})}, **values}
    return f"/v2/conversations/{conversation.replace(chr(0), '%00')}/messages", body


@pytest.mark.parametrize(("field", "fields", "why"), BAD_FIELDS)
async def test_both_adapters_refuse_the_same_input_naming_the_field(
    server: EngineServer, field: str, fields: dict[str, Any], why: str
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = mcp_pb2_grpc.MCPEngineStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ProcessMessage(grpc_request(fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert (caught.value.details() or "").startswith(f"invalid {field}: "), caught.value.details()
    assert why in (caught.value.details() or "")
    path, body = rest_call(fields)
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"http://127.0.0.1:{server.http_port}{path}", json=body)
        error = (await response.json())["error"]
    assert response.status == 400, error
    where = ["path", "conversation_id"] if field == "conversation_id" else ["body", *field.split(".")]
    if field == "attributes":
        where = ["body", "content", "attributes"]
    assert error["details"]["errors"][0]["loc"] == where, error
    assert why in error["details"]["errors"][0]["msg"]


async def test_state_and_reset_check_the_conversation_id_too(server: EngineServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = mcp_pb2_grpc.MCPEngineStub(channel)
        for call, request in (
            (stub.ProcessMessage, grpc_request({"conversation_id": "c" * (1024 * 1024)})),  # finding 8's 1 MB
            (stub.GetConversationState, mcp_pb2.GetStateRequest(conversation_id="a\nb")),
            (stub.ResetConversation, mcp_pb2.ResetRequest(conversation_id="x" * 300)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (caught.value.details() or "").startswith("invalid conversation_id: ")


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    """The access log as ``serve`` writes it in text format: one entry per formatted record."""
    lines: list[str] = []
    formatter = TextFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    logger = logging.getLogger("mcp_engine.access")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_cr_lf_in_a_field_cannot_forge_an_access_log_line(
    server: EngineServer, access_lines: list[str]
) -> None:
    forged = "x\r\n2026-01-01 00:00:00 INFO mcp_engine.access: request protocol=rest status=200"
    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.http_port}"
        response = await session.get(f"{base}/v2/flows", params={"tenant_id": forged})  # no key: 401
        assert response.status == 401
        response = await session.get(f"{base}/v2/conversations/a%0D%0Aforged")
        assert response.status == 400
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = mcp_pb2_grpc.MCPEngineStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ProcessMessage(mcp_pb2.ProcessMessageRequest(tenant_id=forged, conversation_id=forged))
    assert len(access_lines) == 3
    for line in access_lines:
        assert "\r" not in line
        assert "\n" not in line
    assert "tenant=x\\r\\n2026-01-01" in access_lines[0]
    assert "status=401" in access_lines[0]
    assert "conversation=a\\r\\nforged" in access_lines[1]
    assert "protocol=grpc" in access_lines[2]
    assert "status=INVALID_ARGUMENT" in access_lines[2]

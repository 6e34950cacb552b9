"""``mcp-engine serve`` (SPEC §7): one process, REST and gRPC, flows loaded at start, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.config import EngineSettings
from mcp_engine.errors import EngineError
from mcp_engine.runtime.services import EngineServices
from mcp_engine.serve import EngineServer
from mcp_engine.store.factory import open_store
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import FakeIntegration, granted_environment
from tests.serve_kit import ENV, ExampleBackend, flows_folder, serve

pytestmark = pytest.mark.slow
SLOW_S = 1.0
BALANCE = "The balance of account 12345678 is 1234.5 EUR (as of 2024-05-01)."


@pytest.fixture
def backend(fake_integration: FakeIntegration) -> ExampleBackend:
    return ExampleBackend(fake_integration, delay_s=SLOW_S)


def request(text: str, conversation: str, flow: str | None = None) -> mcp_pb2.ProcessMessageRequest:
    return mcp_pb2.ProcessMessageRequest(
        tenant_id="demo",
        conversation_id=conversation,
        content=mcp_pb2.MessageContent(type="text", text=text),
        hints=mcp_pb2.ProcessingHints(force_flow=flow or ""),
    )


async def rest_say(
    http: aiohttp.ClientSession, base: str, conversation: str, text: str, flow: str | None = None
) -> tuple[int, dict[str, str], dict[str, object]]:
    body: dict[str, object] = {"content": {"type": "text", "text": text}}
    if flow:
        body["hints"] = {"force_flow": flow}
    async with http.post(
        f"{base}/v2/conversations/{conversation}/messages", json=body, headers={"X-Tenant-ID": "demo"}
    ) as response:
        return response.status, dict(response.headers), await response.json()


async def test_start_reports_loads_flows_and_serves_both_protocols(
    tmp_path: Path, backend: ExampleBackend
) -> None:
    folder = flows_folder(tmp_path / "flows", backend)
    (folder / "broken.json").write_text('{"flow_id": "broken", "tenant_id": "demo", "states": {}}')
    with serve(tmp_path, "--flows", str(folder)) as served:
        out = served.output()
        assert f"store: embedded SQLite at {tmp_path / 'serve.db'}" in out
        assert "plugins: " in out
        assert "state type " in out
        assert "action " in out
        assert "rules backend: python" in out
        assert "event loop: uvloop" in out  # MCP_EVENT_LOOP's default
        assert "service: mcp-engine; A/B testing on, flow versioning on, visual designer on" in out
        assert "AUTH IS OFF" in out
        assert "broken.json skipped" in out
        assert "flows: 4 published" in out
        assert "tenant demo: default flow bank" in out
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{served.base}/v2/health") as response:
                assert response.status == 200
            status, _, reply = await rest_say(http, served.base, "c-rest", "two large pizzas", "pizza")
            assert (status, reply["current_state"]) == (200, "delivery_details")
        async with grpc.aio.insecure_channel(served.target) as channel:
            check = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="mcp.v2.MCPEngine")
            )
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            stub = mcp_pb2_grpc.MCPEngineStub(channel)
            reply = await stub.ProcessMessage(request("hi", "c-grpc"))
            assert reply.flow_id == "bank"  # the tenant's default flow
            key = {"tenant_id": "demo", "conversation_id": "c-grpc"}
            state = await stub.GetConversationState(mcp_pb2.GetStateRequest(**key))
            await stub.ResetConversation(mcp_pb2.ResetRequest(**key))
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await stub.GetConversationState(mcp_pb2.GetStateRequest(**key))
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        # one access line per call, written by the servicer with the status the client got
        line = "protocol=grpc method={} status={} tenant=demo conversation=c-grpc"
        served.wait_for(line.format("ProcessMessage", "OK") + f" state={reply.current_state}")
        served.wait_for(line.format("GetConversationState", "OK") + f" state={state.current_state}")
        served.wait_for(line.format("ResetConversation", "OK"))
        served.wait_for(line.format("GetConversationState", "NOT_FOUND"))
        assert await asyncio.to_thread(served.terminate) == 0
    assert "broken.json:" in out  # each problem of the broken flow, with its file


async def test_sigterm_finishes_the_turns_in_flight(tmp_path: Path, backend: ExampleBackend) -> None:
    folder = flows_folder(tmp_path / "flows", backend)
    with serve(tmp_path, "--flows", str(folder)) as served:
        conversations = [f"rest-{i}" for i in range(3)] + [f"grpc-{i}" for i in range(3)]
        async with aiohttp.ClientSession() as http, grpc.aio.insecure_channel(served.target) as channel:
            stub = mcp_pb2_grpc.MCPEngineStub(channel)
            for conversation in conversations:  # to ask_account, fast
                await rest_say(http, served.base, conversation, "what's my balance?", "bank")

            async def slow_turn(conversation: str) -> tuple[str, list[str]]:
                if conversation.startswith("rest"):
                    status, _, reply = await rest_say(http, served.base, conversation, "12345678")
                    assert status == 200, reply
                    return str(reply["current_state"]), [m["text"] for m in reply["messages"]]  # type: ignore[attr-defined]
                answer = await stub.ProcessMessage(request("12345678", conversation), timeout=20)
                return answer.current_state, [m.text for m in answer.messages]

            turns = [asyncio.create_task(slow_turn(c)) for c in conversations]
            deadline = time.monotonic() + 10
            while backend.balance_calls < len(conversations) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert backend.balance_calls == len(conversations)  # every turn is inside the engine
            started = time.monotonic()
            exit_code = asyncio.create_task(asyncio.to_thread(served.terminate))
            replies = await asyncio.gather(*turns)
            assert await exit_code == 0
            assert time.monotonic() - started < SLOW_S + 5
        for state, texts in replies:
            assert state == "anything_else"
            assert BALANCE in texts
        assert "stopped" in served.output()
    store = SQLiteStore(str(served.db))
    await store.open()
    try:
        for conversation in conversations:
            found = await store.load("demo", conversation)
            assert found is not None
            assert found.context["current_state"] == "anything_else"
    finally:
        await store.close()


async def test_one_parallel_turn_refuses_the_next_at_once(tmp_path: Path, backend: ExampleBackend) -> None:
    settings = EngineSettings.model_validate(
        {
            "MCP_SQLITE_PATH": str(tmp_path / "e.db"),
            "MAX_PARALLEL_EXECUTIONS": 1,
            "HTTP_PORT": 0,
            "GRPC_PORT": 0,
            **granted_environment(list(ENV)),
        }
    )
    server = EngineServer(
        settings, flows_dir=flows_folder(tmp_path / "flows", backend), services=EngineServices(env=ENV)
    )
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        async with (
            aiohttp.ClientSession() as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
        ):
            await rest_say(http, base, "slow", "what's my balance?", "bank")
            slow = asyncio.create_task(rest_say(http, base, "slow", "12345678"))
            while backend.balance_calls == 0:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            status, headers, body = await rest_say(http, base, "other", "two pizzas", "pizza")
            assert (status, headers["Retry-After"]) == (503, "1")
            assert body["error"]["code"] == "overloaded"  # type: ignore[index]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await mcp_pb2_grpc.MCPEngineStub(channel).ProcessMessage(request("hi", "other-2", "pizza"))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert ("retry-after", "1") in tuple(refused.value.trailing_metadata() or ())
            assert time.monotonic() - started < SLOW_S / 2  # refused at once, not queued
            assert (await slow)[0] == 200
    finally:
        await server.stop()


def test_the_production_store_is_refused_clearly() -> None:
    settings = EngineSettings.model_validate({"POSTGRES_URI": "postgresql://127.0.0.1/x"})
    with pytest.raises(EngineError, match="PostgreSQL \\+ Redis store not available yet"):
        open_store(settings)


async def test_service_name_and_switches_in_logs_and_metrics(tmp_path: Path) -> None:
    env = {
        "SERVICE_NAME": "chat-prod",
        "MCP_LOG_FORMAT": "json",
        "ENABLE_AB_TESTING": "false",
        "ENABLE_FLOW_VERSIONING": "false",
        "ENABLE_VISUAL_DESIGNER": "false",
    }
    with serve(tmp_path, env=env) as served:
        served.wait_for('"message":"serving REST')
        records = [json.loads(line) for line in served.output().splitlines() if line.startswith("{")]
        assert records
        assert all(record["service"] == "chat-prod" for record in records)
        messages = [record["message"] for record in records]
        assert "service: chat-prod; A/B testing off, flow versioning off, visual designer off" in messages
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{served.base}/metrics") as response:
                assert 'mcp_engine_info{service="chat-prod"} 1.0' in await response.text()
            async with http.get(f"{served.base}/playground") as response:
                assert response.status == 404
        assert await asyncio.to_thread(served.terminate) == 0

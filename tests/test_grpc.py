"""``mcp.v2.MCPEngine`` through a real grpc.aio server on 127.0.0.1 and a real channel (SPEC §7).

Every RPC, every status code the adapter produces (with the stable ``error-code`` trailer), the client
deadline reaching the turn, the limiter, health checking, reflection, ordering and idempotency. Auth is
the real ``Authenticator`` in mode "on" with one key per tenant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import orjson
import pytest
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.api.grpc.server import create_server, set_not_serving
from mcp_engine.auth import Authenticator, AuthMode
from mcp_engine.metrics import Metrics
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from tests.engine_fixtures import TENANT, open_engine
from tests.turnkit import flow, go, on, serve, set_action, wait

T = TypeVar("T")
OTHER = "other"


class Client:
    """A stub on a real channel, with the key of one tenant in every call's metadata."""

    def __init__(self, channel: grpc.aio.Channel, key: str | None) -> None:
        self.stub = mcp_pb2_grpc.MCPEngineStub(channel)
        self.channel = channel
        self.metadata = (("authorization", f"Bearer {key}"),) if key else ()

    async def send(
        self, conversation: str, text: str, *, flow: str = "", timeout: float | None = None, **fields: Any
    ) -> mcp_pb2.ProcessMessageResponse:
        request = mcp_pb2.ProcessMessageRequest(
            conversation_id=conversation,
            content=mcp_pb2.MessageContent(text=text),
            hints=mcp_pb2.ProcessingHints(force_flow=flow),
            **fields,
        )
        return await self.stub.ProcessMessage(request, metadata=self.metadata, timeout=timeout)

    async def state(self, conversation: str, tenant: str = "") -> mcp_pb2.GetStateResponse:
        request = mcp_pb2.GetStateRequest(tenant_id=tenant, conversation_id=conversation)
        return await self.stub.GetConversationState(request, metadata=self.metadata)

    async def context(self, conversation: str) -> dict[str, Any]:
        return json_format.MessageToDict((await self.state(conversation)).context)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    async with open_engine(tmp_path / "engine.db") as service:
        yield service


@pytest.fixture
async def keys(engine: ExecutionService) -> dict[str, str]:
    auth = Authenticator(engine.store, "on", None)
    found = {}
    for tenant in (TENANT, OTHER):
        if await engine.store.get_tenant(tenant) is None:
            await auth.create_tenant(tenant)
        found[tenant] = (await auth.create_key(tenant))[1]
    return found


@asynccontextmanager
async def running(
    engine: ExecutionService,
    key: str | None,
    limiter: Limiter,
    mode: AuthMode = "on",
    metrics: Metrics | None = None,
) -> AsyncIterator[tuple[grpc.aio.Server, Client]]:
    """A started server on 127.0.0.1 and a client of it sending ``key``."""
    auth = Authenticator(engine.store, mode, None)
    server, port = await create_server(engine, auth, limiter, metrics=metrics)
    await server.start()
    client = Client(grpc.aio.insecure_channel(f"127.0.0.1:{port}"), key)
    try:
        yield server, client
    finally:
        await client.channel.close()
        await server.stop(None)


@pytest.fixture
async def client(engine: ExecutionService, keys: dict[str, str]) -> AsyncIterator[Client]:
    async with running(engine, keys[TENANT], Limiter(100)) as (_, found):
        yield found


async def refused(call: Awaitable[T], code: grpc.StatusCode, error_code: str) -> grpc.aio.AioRpcError:
    """``call`` must fail with ``code`` and the engine's ``error-code`` trailer."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    assert error.code() == code, error.details()
    assert dict(error.trailing_metadata() or ())["error-code"] == error_code
    return error


def updates(reply: mcp_pb2.ProcessMessageResponse) -> dict[str, Any]:
    return {path: orjson.loads(value) for path, value in reply.context_updates.items()}


# --- the RPCs ---------------------------------------------------------------------------------------


async def test_force_flow_on_every_message_as_a_chat_service_sends_it(client: Client) -> None:
    """Naming the run's own flow goes on with the run, inside its sub-flow too; another flow starts a run."""
    asked = await client.send("chat", "I want to talk to someone", flow="support")
    assert (asked.flow_id, asked.current_state) == ("collect_contact", "ask_contact")
    named = await client.send("chat", "Jane", flow="support")
    assert (named.flow_id, named.current_state) == ("collect_contact", "ask_contact")
    assert [m.text for m in named.messages] == ["Thanks Jane. What's the best email address to reach you?"]
    switched = await client.send("chat", "hello", flow="pizza")
    assert (switched.flow_id, switched.current_state) == ("pizza", "main_menu")


async def test_a_pizza_order_over_several_turns(client: Client) -> None:
    first = await client.send("p1", "I'd like to order a pizza", flow="pizza", user_id="u1", channel="web")
    assert first.current_state == "take_order"
    assert [m.text for m in first.messages] == [
        "Hi, welcome to Pronto Pizza! Would you like to order a pizza?",
        "What size would you like: small, medium or large?",
    ]
    assert first.response == first.messages[-1]
    assert (first.flow_id, first.flow_version, first.conversation_id) == ("pizza", "1.0.0", "p1")
    assert first.confidence_scores["order_pizza"] >= 0.7
    assert first.processing_time_ms >= 0
    assert "log_event" in first.actions_performed
    assert (await client.send("p1", "large")).current_state == "take_order"
    third = await client.send("p1", "two")
    assert third.current_state == "delivery_details"
    assert third.response.text == "Where should we deliver your 2 large pizzas?"
    assert updates(third)["slots.count"] == 2  # JSON-encoded: the number stays a number
    assert updates(third)["current_state"] == "delivery_details"

    state = await client.state("p1")
    assert (state.conversation_id, state.current_state, state.flow_id, state.flow_version) == (
        "p1",
        "delivery_details",
        "pizza",
        "1.0.0",
    )
    context = json_format.MessageToDict(state.context)
    assert context["slots"] == {"size": "large", "count": 2}
    assert (context["user_id"], context["channel"], context["tenant_id"]) == ("u1", "web", TENANT)


async def test_reset_forgets_the_conversation(client: Client) -> None:
    await client.send("r1", "I'd like to order a pizza", flow="pizza")
    request = mcp_pb2.ResetRequest(conversation_id="r1")
    assert (await client.stub.ResetConversation(request, metadata=client.metadata)).reset is True
    await refused(client.state("r1"), grpc.StatusCode.NOT_FOUND, "conversation_not_found")
    assert (await client.stub.ResetConversation(request, metadata=client.metadata)).reset is False


async def test_a_repeated_message_id_returns_the_stored_reply_and_changes_nothing(
    client: Client, engine: ExecutionService
) -> None:
    metadata = {"message_id": "m-1"}
    first = await client.send("i1", "I'd like to order a pizza", flow="pizza", metadata=metadata)
    again = await client.send("i1", "I'd like to order a pizza", flow="pizza", metadata=metadata)
    assert again == first
    history = await engine.store.history(TENANT, "i1", limit=100)
    assert [e["type"] for e in history].count("message_in") == 1


# --- errors -----------------------------------------------------------------------------------------


async def test_bad_input_is_invalid_argument(client: Client) -> None:
    await refused(client.send("e1", "  ", flow="pizza"), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
    too_long = "x" * (64 * 1024 + 1)
    await refused(
        client.send("e1", too_long, flow="pizza"), grpc.StatusCode.RESOURCE_EXHAUSTED, "payload_too_large"
    )


async def test_unknown_flow_or_conversation_is_not_found(client: Client) -> None:
    await refused(client.send("n1", "hello", flow="nope"), grpc.StatusCode.NOT_FOUND, "flow_not_found")
    await refused(client.state("never"), grpc.StatusCode.NOT_FOUND, "conversation_not_found")


async def test_a_key_naming_another_tenant_is_permission_denied(client: Client) -> None:
    call = client.send("x1", "hello", flow="pizza", tenant_id=OTHER)
    error = await refused(call, grpc.StatusCode.PERMISSION_DENIED, "permission_denied")
    assert "another tenant" in (error.details() or "")
    await refused(client.state("x1", tenant=OTHER), grpc.StatusCode.PERMISSION_DENIED, "permission_denied")


async def test_no_key_or_a_wrong_key_is_unauthenticated(client: Client) -> None:
    for metadata in ((), (("authorization", "Bearer mcpk_0_wrong"),), (("authorization", "Basic x"),)):
        client.metadata = metadata
        await refused(
            client.send("a1", "hello", flow="pizza"), grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"
        )


async def test_with_auth_off_the_request_names_its_tenant(engine: ExecutionService) -> None:
    async with running(engine, None, Limiter(1), mode="off") as (_, client):
        reply = await client.send("f1", "I'd like to order a pizza", flow="pizza", tenant_id=TENANT)
        assert reply.current_state == "take_order"
        await refused(client.state("f1"), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
        assert (await client.state("f1", tenant=TENANT)).flow_id == "pizza"


async def test_a_full_limiter_is_unavailable_with_retry_after(
    engine: ExecutionService, keys: dict[str, str]
) -> None:
    async with running(engine, keys[TENANT], Limiter(0)) as (_, client):
        error = await refused(
            client.send("o1", "hello", flow="pizza"), grpc.StatusCode.UNAVAILABLE, "overloaded"
        )
        assert dict(error.trailing_metadata() or ())["retry-after"] == "1"


async def test_an_unexpected_error_is_internal_without_internals(
    client: Client, engine: ExecutionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(tenant: str, conversation: str) -> dict[str, Any]:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(engine, "get_state", broken)
    error = await refused(client.state("any"), grpc.StatusCode.INTERNAL, "internal")
    assert error.details() == "internal error"


async def test_each_refusal_is_counted_once(engine: ExecutionService, keys: dict[str, str]) -> None:
    """The adapter counts what it refuses itself; the engine counts the errors of its turns."""
    metrics = engine.metrics = Metrics()
    async with running(engine, keys[TENANT], Limiter(1), metrics=metrics) as (_, client):
        await refused(client.send("m1", "hi", flow="nope"), grpc.StatusCode.NOT_FOUND, "flow_not_found")
        client.metadata = ()
        await refused(client.send("m1", "hi"), grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")
    text = metrics.render().decode()
    assert 'mcp_errors_total{code="flow_not_found",kind="request"} 1.0' in text
    assert 'mcp_errors_total{code="unauthenticated",kind="request"} 1.0' in text


async def test_the_client_deadline_abandons_a_slow_turn_unwritten(
    client: Client, engine: ExecutionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    deadlines: list[float | None] = []
    process = engine.process_message

    async def spy(*args: Any, deadline: float | None = None, **kwargs: Any) -> dict[str, Any]:
        deadlines.append(None if deadline is None else deadline - time.monotonic())
        return await process(*args, deadline=deadline, **kwargs)

    monkeypatch.setattr(engine, "process_message", spy)

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    async with serve(web.get("/slow", slow)) as url:
        await engine.catalogue.publish_document(slow_flow(url))
        await client.send("d1", "hi", flow="slow")
        before = await client.context("d1")
        call = client.send("d1", "slow", timeout=0.5)
        await refused_deadline(call)
        assert deadlines[0] is None  # no client deadline: none for the engine either
        assert deadlines[1] is not None  # the client's, handed to the turn
        assert 0 < deadlines[1] <= 0.6  # about the 0.5 s the client gave (clocks differ a little)
        release.set()
        after_hi = await client.send("d1", "hi")  # waits for the abandoned turn's lock
    assert after_hi.current_state == "w"
    context = await client.context("d1")
    assert context["previous_states"] == before["previous_states"] + ["w"]
    history = await engine.store.history(TENANT, "d1", limit=100)
    assert sorted(e["data"]["text"] for e in history if e["type"] == "message_in") == ["hi", "hi"]


async def refused_deadline(call: Awaitable[T]) -> None:
    """The client's own deadline ends the call (the server may not get to send its trailers first)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def slow_flow(url: str) -> dict[str, Any]:
    """Waits in "w"; the message "slow" calls an integration at ``url``/slow, which answers when told,
    then waits in "idle"."""
    integration = {"type": "rest", "base_url": url, "timeout_ms": 60_000, "retry_policy": {"max_retries": 0}}
    return flow(
        "w",
        {
            "w": wait(go("call", "event.text == 'slow'"), on("any_input", "w")),
            "call": {
                "type": "integration",
                "config": {"integration_id": "slow", "endpoint": "/slow"},
                "transitions": [on("integration_success", "idle"), on("integration_error", "idle")],
            },
            "idle": wait(on("any_input", "w")),
        },
        flow_id="slow",
        tenant_id=TENANT,
        integrations={"slow": integration},
    )


# --- ordering ---------------------------------------------------------------------------------------


async def test_concurrent_messages_to_one_conversation_run_one_at_a_time_in_order(
    client: Client, engine: ExecutionService
) -> None:
    counter = flow(
        "w",
        {"w": wait(on("any_input", "w", actions=[set_action("n", expression="variables.n + 1")]))},
        flow_id="counter",
        tenant_id=TENANT,
        variables={"n": 0},
    )
    await engine.catalogue.publish_document(counter)
    replies = await asyncio.gather(*(client.send("c1", f"m{i}", flow="counter") for i in range(20)))
    counts = [updates(reply)["variables.n"] for reply in replies]
    assert sorted(counts) == list(range(1, 21))  # each turn saw every turn before it
    assert (await client.context("c1"))["variables"]["n"] == 20
    history = await engine.store.history(TENANT, "c1", limit=1000)
    inbound = [e["data"]["text"] for e in reversed(history) if e["type"] == "message_in"]
    assert inbound == [f"m{i}" for i in sorted(range(20), key=counts.__getitem__)]  # in the order they ran


# --- health and reflection --------------------------------------------------------------------------


async def test_health_is_serving_until_set_not_serving(
    engine: ExecutionService, keys: dict[str, str]
) -> None:
    async with running(engine, keys[TENANT], Limiter(1)) as (server, client):
        health = health_pb2_grpc.HealthStub(client.channel)
        for service in ("", "mcp.v2.MCPEngine"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await set_not_serving(server)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="mcp.v2.MCPEngine"))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_and_describes_the_service(client: Client) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="mcp.v2.MCPEngine"),
    ]
    answers = [answer async for answer in stub.ServerReflectionInfo(iter(requests))]
    names = {service.name for service in answers[0].list_services_response.service}
    assert {"mcp.v2.MCPEngine", "grpc.health.v1.Health"} <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto  # the proto itself is served


# --- user_profile and hints -------------------------------------------------------------------------


async def test_user_profile_is_merged_and_shown_in_the_state(
    client: Client, engine: ExecutionService
) -> None:
    await engine.catalogue.publish_document(
        flow("w", {"w": wait(on("any_input", "w"))}, flow_id="profile", tenant_id=TENANT)
    )
    profile = json_format.ParseDict({"name": "Ada", "tier": "gold", "address": {"city": "Oslo"}}, Struct())
    await client.send("u1", "hi", flow="profile", user_profile=profile)
    patch = json_format.ParseDict({"tier": None, "address": {"zip": "0150"}}, Struct())
    await client.send("u1", "again", flow="profile", user_profile=patch)
    await client.send("u1", "unset changes nothing", flow="profile")
    state = await client.state("u1")
    expected = {"name": "Ada", "address": {"city": "Oslo", "zip": "0150"}}
    assert json_format.MessageToDict(state.user_profile) == expected
    assert (await client.context("u1"))["user_profile"] == expected


async def test_bad_user_profile_and_priority_are_invalid_argument(
    client: Client, engine: ExecutionService
) -> None:
    huge = json_format.ParseDict({"notes": "x" * (engine.settings.max_user_profile_bytes + 1)}, Struct())
    error = await refused(
        client.send("u2", "hi", flow="pizza", user_profile=huge),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    assert "user_profile" in (error.details() or "")
    request = mcp_pb2.ProcessMessageRequest(
        conversation_id="u2",
        content=mcp_pb2.MessageContent(text="hi"),
        hints=mcp_pb2.ProcessingHints(force_flow="pizza", priority="urgent"),
    )
    error = await refused(
        client.stub.ProcessMessage(request, metadata=client.metadata),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    assert "hints.priority" in (error.details() or "")
    with pytest.raises(grpc.aio.AioRpcError):  # nothing of the refused turns was stored
        await client.state("u2")

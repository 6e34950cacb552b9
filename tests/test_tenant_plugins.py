"""Plugins per tenant (SPEC §2 ``plugins``, §7 ``PUT /v2/tenants``, ``GET /v2/plugins``).

A tenant's ``enabled_plugins`` is enforced when a flow is uploaded or published (422, each problem naming
the flow's JSON pointer, the plugin and the tenant) and when a flow runs: one published before its plugin
was disabled fails its next turn with a clean ``plugin_not_enabled`` error over REST and gRPC, writing
nothing. Built-ins are always enabled. The third-party plugin is a real installed distribution
(``tests/fake_dists``: ``carousel`` provides a state type and an action).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.api.grpc.server import create_server
from mcp_engine.auth import Authenticator
from mcp_engine.errors import PluginNotEnabled
from mcp_engine.runtime import catalogue
from mcp_engine.runtime.execution import ExecutionService, Hints
from mcp_engine.runtime.limits import Limiter
from mcp_engine.serve import load_flows
from mcp_engine.store.base import Tenant
from tests.engine_fixtures import example_flow, open_engine, rest_client
from tests.plugin_kit import Install
from tests.turnkit import TENANT, flow, msg, on, response

HEADERS = {"X-Tenant-ID": TENANT}
SHOP = "/v2/flows/shop/versions/1.0.0"


def shop(**extra: Any) -> dict[str, Any]:
    """A flow of tenant t1 whose one state is the carousel plugin's, running its action on entry."""
    show = {
        "type": "carousel",
        "config": {"items": ["tea", "cake"]},
        "entry_actions": [{"type": "send_sms", "to": "+33600000000"}],
        "transitions": [on("any_input", "show")],
    }
    return flow("show", {"show": show}, flow_id="shop", **extra)


def builtins_only(**extra: Any) -> dict[str, Any]:
    return flow("hi", {"hi": response("hello", on("any_input", "hi"))}, flow_id="plain", **extra)


@pytest.fixture
async def engine(install: Install, tmp_path: Path) -> AsyncIterator[ExecutionService]:
    """An engine (no flows) whose registry has the carousel plugin installed and a broken one skipped."""
    install("carousel", "broken")
    async with open_engine(tmp_path / "engine.db", publish=False) as service:
        yield service


@pytest.fixture
async def client(engine: ExecutionService) -> AsyncIterator[TestClient[Any, Any]]:
    async with rest_client(engine) as found:
        yield found


async def enable(client: TestClient[Any, Any], plugins: list[str] | None) -> None:
    response = await client.put(f"/v2/tenants/{TENANT}", json={"enabled_plugins": plugins})
    assert response.status in (200, 201), await response.text()


async def problems_of(response: Any) -> dict[str, tuple[str, str]]:
    """pointer -> (code, message) of a 422 flow_invalid answer."""
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "flow_invalid"
    return {p["pointer"]: (p["code"], p["message"]) for p in error["details"]["problems"]}


async def say(client: TestClient[Any, Any], conversation: str, text: str, **hints: Any) -> Any:
    body = {"tenant_id": TENANT, "content": {"type": "text", "text": text}, "hints": hints}
    return await client.post(f"/v2/conversations/{conversation}/messages", json=body)


# --- upload and publish -------------------------------------------------------------------------


async def test_a_flow_using_a_plugin_the_tenant_has_not_enabled_is_refused_at_upload(
    client: TestClient[Any, Any],
) -> None:
    await enable(client, [])
    found = await problems_of(await client.post("/v2/flows", json=shop(), headers=HEADERS))
    for pointer, what in (
        ("/states/show/type", "state type"),
        ("/states/show/entry_actions/0/type", "action"),
    ):
        code, message = found[pointer]
        assert code == "plugin-not-enabled"
        assert what in message
        assert "mcp-engine-carousel 1.2.0 (plugin 'carousel')" in message
        assert f"tenant '{TENANT}'" in message
    report = await (await client.post("/v2/flows/validate", json=shop(), headers=HEADERS)).json()
    assert not report["valid"]
    assert {p["pointer"] for p in report["problems"] if p["code"] == "plugin-not-enabled"} == set(found)
    assert (await client.get("/v2/flows/shop", headers=HEADERS)).status == 404, "nothing was stored"


@pytest.mark.parametrize("name", ["carousel", "mcp-engine-carousel", "MCP_Engine.Carousel"])
async def test_enabled_by_plugin_or_distribution_name_it_uploads_publishes_and_runs(
    client: TestClient[Any, Any], name: str
) -> None:
    await enable(client, [name])
    assert (await client.post("/v2/flows", json=shop(), headers=HEADERS)).status == 201
    assert (await client.post(f"{SHOP}/publish", headers=HEADERS)).status == 200
    reply = await say(client, "c1", "hi", force_flow="shop")
    assert reply.status == 200, await reply.text()
    assert (await reply.json())["actions_performed"] == ["send_sms", "send_sms"]  # entry, then again


async def test_publish_validates_again_in_the_tenant_view(client: TestClient[Any, Any]) -> None:
    assert (await client.post("/v2/flows", json=shop(), headers=HEADERS)).status == 201  # all enabled
    await enable(client, ["mcp-engine"])  # only the built-ins
    found = await problems_of(await client.post(f"{SHOP}/publish", headers=HEADERS))
    assert found["/states/show/type"][0] == "plugin-not-enabled"
    versions = await (await client.get("/v2/flows/shop/versions", headers=HEADERS)).json()
    assert [v["status"] for v in versions["versions"]] == ["draft"]


async def test_the_flow_plugins_field_names_plugins_the_tenant_must_have_enabled(
    client: TestClient[Any, Any],
) -> None:
    await enable(client, [])
    found = await problems_of(await client.post("/v2/flows", json=builtins_only(plugins=["carousel"])))
    code, message = found["/plugins/0"]
    assert code == "plugin-not-enabled"
    assert "plugin 'carousel' (mcp-engine-carousel 1.2.0" in message
    assert f"tenant '{TENANT}'" in message
    found = await problems_of(
        await client.post("/v2/flows", json=builtins_only(plugins=["mcp-engine", "carousell", "broken"]))
    )
    assert set(found) == {"/plugins/1", "/plugins/2"}
    assert found["/plugins/1"] == (
        "unknown-plugin",
        "plugin 'carousell' is not installed (did you mean 'carousel'?) (installed: carousel)",
    )
    assert found["/plugins/2"][0] == "unknown-plugin"
    assert "installed but skipped: failed to load" in found["/plugins/2"][1]
    await enable(client, ["carousel"])
    assert (await client.post("/v2/flows", json=builtins_only(plugins=["carousel"]))).status == 201


async def test_builtins_are_always_enabled(client: TestClient[Any, Any]) -> None:
    await enable(client, [])
    pizza = {**example_flow("pizza"), "tenant_id": TENANT}
    assert (await client.post("/v2/flows", json=pizza)).status == 201
    assert (await client.post("/v2/flows/pizza/versions/1.0.0/publish", headers=HEADERS)).status == 200
    assert (await say(client, "p1", "I'd like to order a pizza", force_flow="pizza")).status == 200


# --- run time -----------------------------------------------------------------------------------


async def test_a_flow_published_before_its_plugin_was_disabled_fails_its_next_turn_over_rest(
    client: TestClient[Any, Any], engine: ExecutionService
) -> None:
    await engine.catalogue.publish_document(shop())
    assert (await say(client, "c1", "hi", force_flow="shop")).status == 200
    before = await (await client.get("/v2/conversations/c1", headers=HEADERS)).json()
    history = len(await engine.store.history(TENANT, "c1", limit=1000))
    await enable(client, [])
    refused = await say(client, "c1", "again")
    assert refused.status == 409, await refused.text()
    error = (await refused.json())["error"]
    assert error["code"] == "plugin_not_enabled"
    assert "flow 'shop' 1.0.0 uses state type 'carousel' (/states/show/type)" in error["message"]
    assert f"which tenant '{TENANT}' has not enabled" in error["message"]
    assert error["details"] == {
        "tenant_id": TENANT,
        "flow_id": "shop",
        "flow_version": "1.0.0",
        "plugin": "carousel",
        "distribution": "mcp-engine-carousel",
        "pointer": "/states/show/type",
    }
    new = await say(client, "c2", "hi", force_flow="shop")
    assert (await new.json())["error"]["code"] == "plugin_not_enabled", "a new run fails the same way"
    assert await (await client.get("/v2/conversations/c1", headers=HEADERS)).json() == before
    assert len(await engine.store.history(TENANT, "c1", limit=1000)) == history, "nothing was written"
    await enable(client, ["carousel"])
    assert (await say(client, "c1", "again")).status == 200, "enabled again, the conversation goes on"


async def test_a_flow_needing_a_plugin_in_its_plugins_field_fails_when_it_is_disabled(
    client: TestClient[Any, Any], engine: ExecutionService
) -> None:
    await engine.catalogue.publish_document(builtins_only(plugins=["mcp-engine-carousel"]))
    assert (await say(client, "c1", "hi", force_flow="plain")).status == 200
    await enable(client, ["mcp-engine"])
    error = (await (await say(client, "c1", "hi")).json())["error"]
    assert error["code"] == "plugin_not_enabled"
    assert error["details"]["pointer"] == "/plugins/0"


async def test_over_grpc_the_next_turn_fails_with_failed_precondition(
    client: TestClient[Any, Any], engine: ExecutionService
) -> None:
    await engine.catalogue.publish_document(shop())
    server, port = await create_server(engine, Authenticator(engine.store, "off", None), Limiter(8))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = mcp_pb2_grpc.MCPEngineStub(channel)

    def request(text: str) -> mcp_pb2.ProcessMessageRequest:
        return mcp_pb2.ProcessMessageRequest(
            tenant_id=TENANT,
            conversation_id="g1",
            content=mcp_pb2.MessageContent(text=text),
            hints=mcp_pb2.ProcessingHints(force_flow="shop"),
        )

    try:
        assert (await stub.ProcessMessage(request("hi"))).current_state == "show"
        await enable(client, [])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ProcessMessage(request("again"))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "state type 'carousel'" in str(caught.value.details())
        assert dict(caught.value.trailing_metadata() or ())["error-code"] == "plugin_not_enabled"
        state = await stub.GetConversationState(
            mcp_pb2.GetStateRequest(tenant_id=TENANT, conversation_id="g1")
        )
        assert state.current_state == "show", "the conversation is still there, untouched"
    finally:
        await channel.close()
        await server.stop(None)


async def test_another_engine_sees_a_disabled_plugin_once_its_tenant_cache_expires(
    engine: ExecutionService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two engine processes on one store: the one that changed the tenant knows at once, the other
    within ``TENANT_CACHE_S`` (its clock is moved past it here rather than waited for)."""
    await engine.catalogue.publish_document(shop())
    async with open_engine(tmp_path / "engine.db", publish=False) as other:
        await other.process_message(TENANT, "c1", msg("hi"), Hints(force_flow="shop"))
        await engine.catalogue.put_tenant(Tenant(TENANT, enabled_plugins=()))
        with pytest.raises(PluginNotEnabled):
            await engine.process_message(TENANT, "c1", msg("again"))
        assert (await other.process_message(TENANT, "c1", msg("again")))["current_state"] == "show"
        later = time.monotonic() + catalogue.TENANT_CACHE_S + 1
        monkeypatch.setattr(other.catalogue, "_clock", lambda: later)
        with pytest.raises(PluginNotEnabled):
            await other.process_message(TENANT, "c1", msg("once more"))


# --- tenants and the plugin list ----------------------------------------------------------------


async def test_put_tenant_refuses_names_that_are_no_installed_plugin(client: TestClient[Any, Any]) -> None:
    refused = await client.put(
        f"/v2/tenants/{TENANT}", json={"enabled_plugins": ["carousel", "carousell", "mcp-engine", "nope"]}
    )
    assert refused.status == 400, await refused.text()
    error = (await refused.json())["error"]
    assert error["code"] == "invalid_argument"
    assert error["message"] == (
        "enabled_plugins names no installed plugin or distribution: 'carousell', 'nope' "
        "(installed: broken, carousel)"
    )
    assert [e["loc"] for e in error["details"]["errors"]] == [
        ["body", "enabled_plugins", 1],
        ["body", "enabled_plugins", 3],
    ]
    assert (await client.get("/v2/plugins", headers=HEADERS)).status == 200
    await enable(client, ["mcp-engine-carousel", "broken", "mcp-engine"])  # a skipped one may be enabled


async def test_get_plugins_shows_what_is_installed_what_the_tenant_enabled_and_what_was_skipped(
    client: TestClient[Any, Any],
) -> None:
    anonymous = await (await client.get("/v2/plugins")).json()
    assert anonymous["tenant_id"] is None
    assert anonymous["enabled_plugins"] is None
    assert {p["enabled"] for p in anonymous["plugins"]} == {None}
    (skipped,) = anonymous["skipped"]
    assert (skipped["plugin"], skipped["distribution"], skipped["version"]) == (
        "broken",
        "mcp-engine-broken",
        "0.3.0",
    )
    assert "mcp_engine_fake_missing_dependency" in skipped["reason"]

    def enabled(listing: dict[str, Any]) -> dict[str, bool]:
        return {
            p["name"]: p["enabled"]
            for p in listing["plugins"]
            if p["name"] in ("carousel", "send_sms", "intent")
        }

    unset = await (await client.get("/v2/plugins", headers=HEADERS)).json()
    assert (unset["tenant_id"], unset["enabled_plugins"]) == (TENANT, None)
    assert enabled(unset) == {"carousel": True, "send_sms": True, "intent": True}
    await enable(client, [])
    none = await (await client.get("/v2/plugins", headers=HEADERS)).json()
    assert none["enabled_plugins"] == []
    assert enabled(none) == {"carousel": False, "send_sms": False, "intent": True}
    assert [p["name"] for p in none["plugins"]] == [p["name"] for p in anonymous["plugins"]]
    await enable(client, ["mcp-engine-carousel"])
    assert enabled(await (await client.get("/v2/plugins", headers=HEADERS)).json())["carousel"] is True


# --- serve --flows goes through the same catalogue ----------------------------------------------


async def test_serve_flows_skips_a_flow_whose_tenant_has_not_enabled_its_plugin(
    engine: ExecutionService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "plain.json").write_text(json.dumps(builtins_only()))
    (folder / "shop.json").write_text(json.dumps(shop()))
    await engine.catalogue.put_tenant(Tenant(TENANT, enabled_plugins=()))
    with caplog.at_level(logging.ERROR):
        published = await load_flows(engine, folder, None)
    assert published == [f"{TENANT}/plain@1.0.0"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "shop.json skipped: 2 error(s)" in logged
    assert "/states/show/type" in logged
    assert "plugin 'carousel'" in logged

"""REST v2 through aiohttp's test client on the real app, a real engine (SQLite) and the real auth."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from mcp_engine.api.rest.app import ROUTES
from mcp_engine.api.rest.models import MessageReply
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from tests.engine_fixtures import example_flow, open_engine, rest_client

DEMO = {"X-Tenant-ID": "demo"}
ADMIN_KEY = "admin-secret-key"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    async with open_engine(tmp_path / "rest.db") as engine:
        yield engine


def client_for(engine: ExecutionService, mode: str = "off", **options: Any) -> Any:
    return rest_client(engine, mode, admin_key=ADMIN_KEY, **options)


@pytest.fixture
async def client(engine: ExecutionService) -> AsyncIterator[TestClient[Any, Any]]:
    async with client_for(engine) as client:
        yield client


def pizza(version: str = "2.0.0", **changes: Any) -> dict[str, Any]:
    return {**example_flow("pizza"), "version": version, **changes}


async def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    error: dict[str, Any] = (await response.json())["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code
    return error


# --- flows --------------------------------------------------------------------------------------


async def test_create_flow_201_then_same_200_then_other_content_409(client: TestClient[Any, Any]) -> None:
    created = await client.post("/v2/flows", json=pizza(), headers=DEMO)
    assert created.status == 201
    body = await created.json()
    assert (body["flow_id"], body["version"], body["status"]) == ("pizza", "2.0.0", "draft")
    assert body["document"]["initial_state"] == "greeting"
    assert (await client.post("/v2/flows", json=pizza(), headers=DEMO)).status == 200
    changed = await client.post("/v2/flows", json=pizza(name="Other"), headers=DEMO)
    await error_of(changed, 409, "version_exists")


async def test_create_invalid_flow_422_lists_every_problem(client: TestClient[Any, Any]) -> None:
    document = pizza(initial_state="nowhere")
    document["states"]["greeting"]["type"] = "no_such_type"
    error = await error_of(await client.post("/v2/flows", json=document, headers=DEMO), 422, "flow_invalid")
    pointers = {p["pointer"] for p in error["details"]["problems"] if p["severity"] == "error"}
    assert "/initial_state" in pointers
    assert any(p.startswith("/states/greeting") for p in pointers)


async def test_create_flow_of_another_tenant_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v2/flows", json=pizza(), headers={"X-Tenant-ID": "other"})
    await error_of(response, 403, "permission_denied")


async def test_validate_reports_problems_and_stores_nothing(client: TestClient[Any, Any]) -> None:
    report = await (
        await client.post("/v2/flows/validate", json=pizza(initial_state="x"), headers=DEMO)
    ).json()
    assert report["valid"] is False
    assert any(p["pointer"] == "/initial_state" for p in report["problems"])
    good = await client.post("/v2/flows/validate", json=pizza(), headers=DEMO)
    assert (await good.json())["valid"] is True
    versions = await (await client.get("/v2/flows/pizza/versions", headers=DEMO)).json()
    assert [v["version"] for v in versions["versions"]] == ["1.0.0"]


async def test_list_get_versions(client: TestClient[Any, Any]) -> None:
    await client.post("/v2/flows", json=pizza(), headers=DEMO)
    flows = await (await client.get("/v2/flows", headers=DEMO)).json()
    assert {f["flow_id"] for f in flows["flows"]} == {"pizza", "bank", "support", "collect_contact"}
    detail = await (await client.get("/v2/flows/pizza", headers=DEMO)).json()
    assert (detail["version"], detail["published_version"], detail["latest_version"]) == (
        "1.0.0",
        "1.0.0",
        "2.0.0",
    )
    assert detail["version_count"] == 2
    version = await (await client.get("/v2/flows/pizza/versions/2.0.0", headers=DEMO)).json()
    assert version["status"] == "draft"
    assert version["document"]["version"] == "2.0.0"
    await error_of(await client.get("/v2/flows/pizza/versions/9.9.9", headers=DEMO), 404, "flow_not_found")
    await error_of(await client.get("/v2/flows/nope", headers=DEMO), 404, "flow_not_found")
    await error_of(await client.get("/v2/flows/nope/versions", headers=DEMO), 404)
    other = await (await client.get("/v2/flows", headers={"X-Tenant-ID": "other"})).json()
    assert other == {"flows": []}


async def test_bad_path_parameter_names_its_location(client: TestClient[Any, Any]) -> None:
    error = await error_of(await client.get("/v2/flows/pizza/versions/v1", headers=DEMO), 400)
    assert error["details"]["errors"][0]["loc"] == ["path", "version"]


async def test_publish_then_conversations_use_it(client: TestClient[Any, Any]) -> None:
    await client.post("/v2/flows", json=pizza(), headers=DEMO)
    published = await client.post("/v2/flows/pizza/versions/2.0.0/publish", headers=DEMO)
    assert published.status == 200
    assert (await published.json())["status"] == "published"
    detail = await (await client.get("/v2/flows/pizza", headers=DEMO)).json()
    assert detail["published_version"] == "2.0.0"
    reply = await send(client, "c-pub", "hi", force_flow="pizza")
    assert reply["flow_version"] == "2.0.0"
    missing = await client.post("/v2/flows/pizza/versions/3.0.0/publish", headers=DEMO)
    await error_of(missing, 404, "flow_not_found")


async def test_delete_flow(client: TestClient[Any, Any]) -> None:
    assert (await client.delete("/v2/flows/bank", headers=DEMO)).status == 204
    await error_of(await client.get("/v2/flows/bank", headers=DEMO), 404)
    await error_of(await client.delete("/v2/flows/bank", headers=DEMO), 404, "flow_not_found")


async def test_a_flow_created_again_after_delete_runs_its_new_content(client: TestClient[Any, Any]) -> None:
    """The compiled version of a deleted flow is evicted: the same version created again is what runs."""
    document = example_flow("pizza")
    before = await client.post("/v2/conversations/c1/messages", json=_message("hi"), headers=DEMO)
    assert before.status == 200
    assert (await client.delete("/v2/flows/pizza", headers=DEMO)).status == 204
    document["states"]["greeting"]["config"]["response_templates"] = {"default": "Welcome back!"}
    assert (await client.post("/v2/flows", json=document, headers=DEMO)).status == 201
    publish = f"/v2/flows/pizza/versions/{document['version']}/publish"
    assert (await client.post(publish, headers=DEMO)).status == 200
    reply = await client.post("/v2/conversations/c2/messages", json=_message("hi"), headers=DEMO)
    assert (await reply.json())["messages"][0]["text"] == "Welcome back!"


def _message(text: str) -> dict[str, Any]:
    return {"tenant_id": "demo", "content": {"type": "text", "text": text}, "hints": {"force_flow": "pizza"}}


@pytest.mark.parametrize(
    ("fmt", "media", "marker"),
    [
        ("mermaid", "text/plain", "flowchart"),
        ("dot", "text/vnd.graphviz", "digraph"),
        ("svg", "image/svg+xml", "<svg"),
    ],
)
async def test_graph_formats(client: TestClient[Any, Any], fmt: str, media: str, marker: str) -> None:
    response = await client.get("/v2/flows/pizza/graph", params={"format": fmt}, headers=DEMO)
    assert response.status == 200
    assert response.content_type == media
    assert marker in await response.text()


async def test_graph_bad_format(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v2/flows/pizza/graph?format=png", headers=DEMO)
    assert (await error_of(response, 400))["details"]["errors"][0]["loc"] == ["query", "format"]


# --- conversations ------------------------------------------------------------------------------


async def send(client: TestClient[Any, Any], conversation: str, text: str, **hints: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"tenant_id": "demo", "user_id": "u1", "content": {"type": "text", "text": text}}
    if hints:
        body["hints"] = hints
    response = await client.post(f"/v2/conversations/{conversation}/messages", json=body)
    assert response.status == 200, await response.text()
    reply: dict[str, Any] = await response.json()
    return reply


async def test_force_flow_on_every_message_as_a_chat_service_sends_it(client: TestClient[Any, Any]) -> None:
    """Naming the run's own flow goes on with the run, inside its sub-flow too; another flow starts a run."""
    asked = await send(client, "chat", "I want to talk to someone", force_flow="support")
    assert (asked["flow_id"], asked["current_state"]) == ("collect_contact", "ask_contact")
    named = await send(client, "chat", "Jane", force_flow="support")
    assert (named["flow_id"], named["current_state"]) == ("collect_contact", "ask_contact")
    assert [m["text"] for m in named["messages"]] == [
        "Thanks Jane. What's the best email address to reach you?"
    ]
    switched = await send(client, "chat", "hello", force_flow="pizza")
    assert (switched["flow_id"], switched["current_state"]) == ("pizza", "main_menu")


async def test_message_reply_state_and_reset(client: TestClient[Any, Any]) -> None:
    reply = await send(client, "c1", "hello", force_flow="pizza")
    assert set(reply) == set(MessageReply.model_fields)
    MessageReply.model_validate(reply)
    assert reply["messages"]
    assert reply["response"] == reply["messages"][-1]
    state = await (await client.get("/v2/conversations/c1", headers=DEMO)).json()
    assert state["current_state"] == reply["current_state"]
    assert state["flow_id"] == "pizza"
    assert state["context"]["conversation_id"] == "c1"
    assert (await client.delete("/v2/conversations/c1", headers=DEMO)).status == 204
    await error_of(await client.get("/v2/conversations/c1", headers=DEMO), 404, "conversation_not_found")
    await error_of(await client.delete("/v2/conversations/c1", headers=DEMO), 404)


async def test_message_without_a_flow_is_404(client: TestClient[Any, Any]) -> None:
    body = {"content": {"text": "hi"}}
    response = await client.post("/v2/conversations/c2/messages", json=body, headers=DEMO)
    await error_of(response, 404, "flow_not_found")


async def test_history_pages_with_a_cursor(client: TestClient[Any, Any]) -> None:
    for text in ("hello", "menu", "pizza", "two large"):
        await send(client, "c3", text, force_flow="pizza")
    everything = await (await client.get("/v2/conversations/c3/history?limit=500", headers=DEMO)).json()
    seqs = [e["seq"] for e in everything["events"]]
    assert everything["next_before"] is None
    assert seqs == sorted(seqs, reverse=True)
    assert len(seqs) > 3
    paged: list[int] = []
    before: int | None = None
    while True:
        params = {"limit": "3", **({"before": str(before)} if before else {})}
        page = await (await client.get("/v2/conversations/c3/history", params=params, headers=DEMO)).json()
        paged += [e["seq"] for e in page["events"]]
        before = page["next_before"]
        if before is None:
            break
    assert paged == seqs
    bad = await client.get("/v2/conversations/c3/history?limit=0", headers=DEMO)
    assert (await error_of(bad, 400))["details"]["errors"][0]["loc"] == ["query", "limit"]
    huge = await client.get(f"/v2/conversations/c3/history?before={2**70}", headers=DEMO)  # was a 500
    assert (await error_of(huge, 400))["details"]["errors"][0]["loc"] == ["query", "before"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"tenant_id": "demo"}, ["body", "content"]),
        ({"tenant_id": "demo", "content": {"text": 5}}, ["body", "content", "text"]),
        ({"tenant_id": "demo", "content": {"text": "hi", "type": "video"}}, ["body", "content", "type"]),
        ({"tenant_id": "demo", "content": {"text": "hi"}, "surprise": 1}, ["body", "surprise"]),
        ([1, 2], ["body"]),
    ],
)
async def test_message_shape_errors(client: TestClient[Any, Any], body: Any, loc: list[Any]) -> None:
    response = await client.post("/v2/conversations/c4/messages", json=body)
    error = await error_of(response, 400, "invalid_argument")
    assert [e["loc"] for e in error["details"]["errors"]] == [loc]


async def test_malformed_json_is_400(client: TestClient[Any, Any]) -> None:
    for raw in (b"{not json", b""):
        response = await client.post("/v2/conversations/c5/messages", data=raw, headers=DEMO)
        await error_of(response, 400, "invalid_argument")
    await error_of(await client.post("/v2/flows", data=b"[", headers=DEMO), 400)


async def test_oversize_body_is_413(engine: ExecutionService) -> None:
    async with client_for(engine, max_body_bytes=1024) as client:
        body = {"tenant_id": "demo", "content": {"text": "x" * 4096}}
        response = await client.post("/v2/conversations/c6/messages", json=body)
        await error_of(response, 413, "payload_too_large")


async def test_unknown_route_and_wrong_method(client: TestClient[Any, Any]) -> None:
    await error_of(await client.get("/v2/nothing"), 404, "not_found")
    response = await client.put("/v2/health")
    error = await error_of(response, 405, "method_not_allowed")
    assert "GET" in error["details"]["allowed"]
    assert "GET" in response.headers["Allow"]


async def test_overloaded_is_503_with_retry_after(engine: ExecutionService) -> None:
    async with client_for(engine, limiter=Limiter(0, retry_after_s=3)) as client:
        body = {"tenant_id": "demo", "content": {"text": "hi"}, "hints": {"force_flow": "pizza"}}
        response = await client.post("/v2/conversations/c7/messages", json=body)
        await error_of(response, 503, "overloaded")
        assert response.headers["Retry-After"] == "3"


async def test_unexpected_error_is_a_generic_500(
    client: TestClient[Any, Any], engine: ExecutionService, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    async def broken(tenant_id: str) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine.store, "list_flows", broken)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/v2/flows", headers=DEMO)
    error = await error_of(response, 500, "internal")
    assert "secret" not in await response.text()
    assert "secret internals" in caplog.text
    assert error["message"]


async def test_tenant_must_be_named_and_only_once(client: TestClient[Any, Any]) -> None:
    await error_of(await client.get("/v2/flows"), 400, "invalid_argument")
    conflict = await client.get("/v2/flows?tenant_id=other", headers=DEMO)
    await error_of(conflict, 403, "permission_denied")
    assert (await client.get("/v2/flows?tenant_id=demo")).status == 200


# --- tenants, keys, plugins, health, openapi ----------------------------------------------------


async def test_tenants_and_keys_with_auth_on(engine: ExecutionService) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with client_for(engine, mode="on") as client:
        await error_of(await client.get("/v2/flows"), 401, "unauthenticated")
        created = await client.put("/v2/tenants/acme", json={"enabled_plugins": []}, headers=admin)
        assert created.status == 201
        assert (await created.json())["enabled_plugins"] == []
        issued = await client.post("/v2/tenants/acme/keys", headers=admin)
        assert issued.status == 201
        key = await issued.json()
        own = {"Authorization": f"Bearer {key['key']}"}
        changed = await client.put(
            "/v2/tenants/acme", json={"outbound_webhook": "http://127.0.0.1:9/h"}, headers=own
        )
        assert changed.status == 200
        assert await changed.json() == {
            "tenant_id": "acme",
            "default_flow": None,
            "enabled_plugins": [],
            "outbound_webhook": "http://127.0.0.1:9/h",
            "webhook_secret_set": False,
        }
        unpublished = await client.put("/v2/tenants/acme", json={"default_flow": "pizza"}, headers=own)
        await error_of(unpublished, 400)
        await error_of(await client.put("/v2/tenants/demo", json={}, headers=own), 403)
        await error_of(await client.get("/v2/flows", headers={**own, **DEMO}), 403)
        assert (await client.get("/v2/flows", headers=own)).status == 200
        await error_of(await client.post("/v2/tenants/acme/keys", headers=own), 401)
        await error_of(await client.post("/v2/tenants/ghost/keys", headers=admin), 404, "not_found")
        assert (await client.delete(f"/v2/tenants/acme/keys/{key['key_id']}", headers=admin)).status == 204
        await error_of(await client.get("/v2/flows", headers=own), 401)
        await error_of(await client.delete(f"/v2/tenants/acme/keys/{key['key_id']}", headers=admin), 404)
        await error_of(
            await client.put("/v2/tenants/acme", json={"enabled_plugins": "x"}, headers=admin), 400
        )


async def test_put_tenant_sets_default_flow(client: TestClient[Any, Any]) -> None:
    response = await client.put("/v2/tenants/demo", json={"default_flow": "pizza"})
    assert response.status == 201
    reply = await send(client, "c8", "hello")
    assert reply["flow_id"] == "pizza"
    assert (await client.put("/v2/tenants/demo", json={"outbound_webhook": None})).status == 200


async def test_health_and_ready(client: TestClient[Any, Any], engine: ExecutionService) -> None:
    assert await (await client.get("/v2/health")).json() == {"status": "ok"}
    assert (await client.get("/v2/health/ready")).status == 200
    await engine.store.close()
    response = await client.get("/v2/health/ready")
    await error_of(response, 503, "unavailable")
    assert (await client.get("/v2/health")).status == 200


async def test_openapi_document_is_valid_and_complete(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v2/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert operations == {(route.method, route.path) for route in ROUTES}
    message = document["paths"]["/v2/conversations/{conversation_id}/messages"]["post"]
    assert message["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MessageRequest"
    }
    assert "503" in message["responses"]

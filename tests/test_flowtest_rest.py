"""``POST /v2/flows/{flow_id}/test`` and ``/replay`` through aiohttp's test client on the real app: the
playground's test cases and replay, tenant-scoped, in the OpenAPI document, never touching the serving
engine's own conversations."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mcp_engine.api.rest.app import create_app
from mcp_engine.auth import Authenticator
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from tests.engine_fixtures import example_flow, open_engine

DEMO = {"X-Tenant-ID": "demo"}
ADMIN_KEY = "admin-secret-key"
ORDER = {
    "name": "a whole order",
    "turns": [
        {"user": "two large pizzas", "state": "delivery_details", "slots": {"size": "large", "count": 2}},
        {"user": "12 Main Street", "messages": ["phone number"]},
    ],
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    async with open_engine(tmp_path / "rest.db") as engine:
        yield engine


@pytest.fixture
async def client(engine: ExecutionService) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(engine, Authenticator(engine.store, "off", ADMIN_KEY), Limiter(8))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def test_cases_run_against_the_published_version(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v2/flows/pizza/test", json={"cases": [ORDER]}, headers=DEMO)
    assert response.status == 200, await response.text()
    report = await response.json()
    assert report["ok"] is True
    assert report["cases"] == [
        {
            "file": None,
            "name": "a whole order",
            "outcome": "passed",
            "turns": 2,
            "xfail": None,
            "failure": None,
        }
    ]
    flows = {f["flow_id"]: f for f in report["coverage"]["flows"]}
    assert set(flows) == {"pizza", "bank", "support", "collect_contact"}
    assert flows["pizza"]["transitions"]["covered"] == 5  # greeting ... price_check -> delivery_details


async def test_a_failing_case_is_a_200_with_its_failure(client: TestClient[Any, Any]) -> None:
    case = copy.deepcopy(ORDER)
    case["turns"][1]["messages"] = ["the moon"]
    report = await (await client.post("/v2/flows/pizza/test", json={"cases": [case]}, headers=DEMO)).json()
    assert report["ok"] is False
    failure = report["cases"][0]["failure"]
    assert (failure["turn"], failure["pointer"], failure["line"]) == (2, "/cases/0/turns/1/messages", None)


async def test_a_stored_version_and_its_sub_flows_with_fakes(
    client: TestClient[Any, Any], engine: ExecutionService
) -> None:
    older = {**example_flow("support"), "version": "1.9.0"}
    older["states"]["billing_info"]["config"]["response_templates"]["default"] = "Old billing answer."
    assert (await client.post("/v2/flows", json=older, headers=DEMO)).status == 201
    case = {
        "name": "billing, then a ticket",
        "turns": [
            {"user": "my bill", "messages": ["Acme support", "Old billing answer", "Bye"]},
            {"user": "someone please", "flow": "collect_contact", "state": "ask_contact"},
            {"user": "Jo"},
            {"user": "jo@example.com"},
            {"user": "yes", "variables": {"ticket_id": "T-7"}},
        ],
    }
    body = {
        "version": "1.9.0",
        "cases": [case],
        "fakes": [{"integration": "helpdesk", "body": {"ticket": {"id": "T-7"}}}],
    }
    report = await (await client.post("/v2/flows/support/test", json=body, headers=DEMO)).json()
    assert report["ok"] is True, report["cases"]
    assert await engine.store.history("demo", "flow-test") == []  # nothing ran on the serving engine


async def test_bad_requests(client: TestClient[Any, Any]) -> None:
    unknown = await client.post("/v2/flows/nope/test", json={"cases": [ORDER]}, headers=DEMO)
    assert unknown.status == 404
    other_tenant = await client.post(
        "/v2/flows/pizza/test", json={"cases": [ORDER]}, headers={"X-Tenant-ID": "acme"}
    )
    assert other_tenant.status == 404
    typo = copy.deepcopy(ORDER)
    typo["turns"][0]["state"] = "delivery_detail"
    named = await client.post("/v2/flows/pizza/test", json={"cases": [typo]}, headers=DEMO)
    error = (await named.json())["error"]
    assert named.status == 400
    assert error["details"]["problems"][0]["pointer"] == "/cases/0/turns/0/state"
    assert "did you mean 'delivery_details'?" in error["details"]["problems"][0]["message"]
    no_input = await client.post(
        "/v2/flows/pizza/test", json={"cases": [{"name": "x", "turns": [{}]}]}, headers=DEMO
    )
    assert no_input.status == 400
    too_many = {"cases": [{"name": str(n), "turns": [{"user": "hi"}] * 200} for n in range(11)]}
    assert (await client.post("/v2/flows/pizza/test", json=too_many, headers=DEMO)).status == 400
    too_many = {"cases": [{"name": str(n), "turns": [{"user": "hi"}]} for n in range(101)]}
    refused = await client.post("/v2/flows/pizza/test", json=too_many, headers=DEMO)
    assert "101 cases in one request; at most 100" in (await refused.json())["error"]["message"]


async def test_the_routes_are_in_the_openapi_document(client: TestClient[Any, Any]) -> None:
    document = await (await client.get("/v2/openapi.json")).json()
    for path in ("/v2/flows/{flow_id}/test", "/v2/flows/{flow_id}/replay"):
        operation = document["paths"][path]["post"]
        assert {"401", "403", "404", "422", "503"} <= set(operation["responses"])
        assert any(p["name"] == "X-Tenant-ID" for p in operation["parameters"])


async def test_replay_of_the_tenants_conversations(client: TestClient[Any, Any]) -> None:
    for text in ("two large pizzas", "12 Main Street", "2127365000"):
        body = {"content": {"text": text}, "hints": {"force_flow": "pizza"}}
        assert (await client.post("/v2/conversations/c-1/messages", json=body, headers=DEMO)).status == 200
    same = await client.post(
        "/v2/flows/pizza/replay", json={"conversation_ids": ["c-1", "c-2"]}, headers=DEMO
    )
    report = await same.json()
    assert same.status == 200, report
    assert [(c["conversation_id"], c["outcome"]) for c in report["conversations"]] == [
        ("c-1", "same"),
        ("c-2", "skipped"),
    ]
    candidate = {**example_flow("pizza"), "version": "1.1.0"}
    candidate["states"]["confirm_order"]["entry_actions"][0]["text"] = "Shall I place the order?"
    differs = await client.post(
        "/v2/flows/pizza/replay", json={"conversation_ids": ["c-1"], "document": candidate}, headers=DEMO
    )
    (result,) = (await differs.json())["conversations"]
    assert result["outcome"] == "differs"
    assert result["first_difference"]["turn"] == 3
    assert result["first_difference"]["replayed"]["messages"] == [
        {"type": "text", "text": "Shall I place the order?"}
    ]
    seen_by_another = await client.post(
        "/v2/flows/pizza/replay", json={"conversation_ids": ["c-1"]}, headers={"X-Tenant-ID": "acme"}
    )
    assert seen_by_another.status == 404  # acme has no pizza flow, and could not read demo's history anyway


async def test_replay_bad_requests(client: TestClient[Any, Any]) -> None:
    candidate = {**example_flow("pizza"), "version": "1.1.0"}
    other = {**candidate, "tenant_id": "acme"}
    assert (
        await client.post(
            "/v2/flows/pizza/replay", json={"conversation_ids": ["c"], "document": other}, headers=DEMO
        )
    ).status == 403
    renamed = {**candidate, "flow_id": "pasta"}
    assert (
        await client.post(
            "/v2/flows/pizza/replay", json={"conversation_ids": ["c"], "document": renamed}, headers=DEMO
        )
    ).status == 400
    broken = {**candidate, "initial_state": "nowhere"}
    invalid = await client.post(
        "/v2/flows/pizza/replay", json={"conversation_ids": ["c"], "document": broken}, headers=DEMO
    )
    assert invalid.status == 422
    both = {"conversation_ids": ["c"], "document": candidate, "version": "1.0.0"}
    assert (await client.post("/v2/flows/pizza/replay", json=both, headers=DEMO)).status == 400
    assert (
        await client.post("/v2/flows/pizza/replay", json={"conversation_ids": []}, headers=DEMO)
    ).status == 400
    uncompilable = copy.deepcopy(example_flow("bank"))
    uncompilable["version"] = "9.0.0"
    uncompilable["integrations"]["core_banking"]["authentication"] = {"type": "basic"}
    said = {"content": {"text": "agent please"}, "hints": {"force_flow": "bank"}}
    assert (await client.post("/v2/conversations/b-1/messages", json=said, headers=DEMO)).status == 200
    body = {"conversation_ids": ["b-1"], "document": uncompilable}
    refused = await client.post("/v2/flows/bank/replay", json=body, headers=DEMO)
    assert refused.status == 400
    assert "basic authentication needs username, password" in (await refused.json())["error"]["message"]
    missing = await client.post(
        "/v2/flows/pizza/replay", json={"conversation_ids": ["c"], "version": "9.0.0"}, headers=DEMO
    )
    assert missing.status == 404


async def test_a_full_limiter_refuses_a_test_run(engine: ExecutionService) -> None:
    limiter = Limiter(1)
    app = create_app(engine, Authenticator(engine.store, "off", ADMIN_KEY), limiter)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client, limiter.slot():
        response = await client.post("/v2/flows/pizza/test", json={"cases": [ORDER]}, headers=DEMO)
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"


async def test_with_auth_on_a_key_tests_only_its_tenants_flows(engine: ExecutionService) -> None:
    auth = Authenticator(engine.store, "on", ADMIN_KEY)
    await auth.create_tenant("demo")
    await auth.create_tenant("acme")
    demo_key, acme_key = (await auth.create_key("demo"))[1], (await auth.create_key("acme"))[1]
    app = create_app(engine, auth, Limiter(8))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        mine = await client.post(
            "/v2/flows/pizza/test", json={"cases": [ORDER]}, headers={"Authorization": f"Bearer {demo_key}"}
        )
        assert mine.status == 200
        theirs = await client.post(
            "/v2/flows/pizza/test",
            json={"cases": [ORDER]},
            headers={"Authorization": f"Bearer {acme_key}", **DEMO},
        )
        assert theirs.status == 403
        assert (await client.post("/v2/flows/pizza/test", json={"cases": [ORDER]})).status == 401

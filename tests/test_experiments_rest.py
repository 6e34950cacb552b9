"""``/v2/experiments`` over the real REST app: the whole life of an experiment, every bad document a
422 saying where (JSON pointer) and why, tenant isolation with auth on, ``ab_variant`` in the
conversation state (REST and gRPC), and the routes in the OpenAPI document."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.api.grpc.server import create_server
from mcp_engine.auth import Authenticator
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from tests.engine_fixtures import TENANT, example_flow, open_engine, rest_client
from tests.experiment_kit import SHORT_GREETING, SHORT_PATCH, document, pizza_version, variant

HEADERS = {"X-Tenant-ID": TENANT}
Client = TestClient[Any, Any]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    async with open_engine(tmp_path / "engine.db") as engine:
        await engine.catalogue.create(TENANT, pizza_version("1.1.0", "Version one-one here."))
        yield engine


@pytest.fixture
async def client(engine: ExecutionService) -> AsyncIterator[Client]:
    async with rest_client(engine) as client:
        yield client


async def call(client: Client, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers=HEADERS, **kw)
    return response.status, await response.json()


async def test_the_life_of_an_experiment(client: Client) -> None:
    status, created = await call(client, "POST", "/v2/experiments", json=document())
    assert status == 201, created
    assert (created["status"], created["control"], created["problems"]) == ("draft", "control", [])
    assert [v["runs_on"] for v in created["variants"]] == [None, None]
    assert (await call(client, "POST", "/v2/experiments", json=document()))[0] == 200  # the same again
    status, started = await call(client, "POST", "/v2/experiments/short-greeting/start")
    assert (status, started["status"]) == (200, "running")
    assert [v["runs_on"] for v in started["variants"]] == [None, "1.0.0+short-greeting.short"]
    replies = [
        await call(
            client,
            "POST",
            f"/v2/conversations/c{n}/messages",
            json={"user_id": f"u{n}", "content": {"text": "hi"}, "hints": {"force_flow": "pizza"}},
        )
        for n in range(12)
    ]
    assert {reply["ab_variant"] for _, reply in replies} == {"control", "short"}
    short = next(reply for _, reply in replies if reply["ab_variant"] == "short")
    assert short["messages"][0]["text"] == SHORT_GREETING
    status, state = await call(client, "GET", f"/v2/conversations/{short['conversation_id']}")
    assert (state["ab_variant"], state["context"]["run"]["variant"]) == ("short", "short")
    status, listed = await call(client, "GET", "/v2/experiments", params={"status": "running"})
    assert [e["experiment_id"] for e in listed["experiments"]] == ["short-greeting"]
    assert (await call(client, "GET", "/v2/experiments", params={"flow_id": "bank"}))[1]["experiments"] == []
    status, results = await call(client, "GET", "/v2/experiments/short-greeting/results")
    assert status == 200
    assert [v["name"] for v in results["variants"]] == ["control", "short"]
    status, stopped = await call(client, "POST", "/v2/experiments/short-greeting/stop")
    assert (status, stopped["status"]) == (200, "stopped")
    assert stopped["stopped_at"] >= stopped["started_at"]
    status, again = await call(client, "POST", "/v2/experiments/short-greeting/start")
    assert (status, again["error"]["code"]) == (409, "experiment_conflict")
    assert (await call(client, "GET", "/v2/experiments/short-greeting"))[1]["status"] == "stopped"


async def test_create_and_start_at_once_and_another_document_under_the_same_id(client: Client) -> None:
    status, created = await call(client, "POST", "/v2/experiments", params={"start": "true"}, json=document())
    assert (status, created["status"]) == (201, "running")
    other = document()
    other["name"] = "Something else"
    status, body = await call(client, "POST", "/v2/experiments", json=other)
    assert (status, body["error"]["code"]) == (409, "experiment_conflict")


def changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(document())
    change(doc)
    return doc


def set_at(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


BROKEN_PATCH = {
    "states": {
        "greeting": {
            "transitions": [{"condition": "expression", "expression": "true", "target_state": "nowhere"}]
        }
    }
}
BAD_DOCUMENTS = [
    ("percentages", set_at(["variants", 1, "percentage"], 40), "/variants", "sum to 90, not 100"),
    ("unknown flow", set_at(["flow_id"], "nope"), "/flow_id", "has no flow 'nope'"),
    (
        "unknown pinned version",
        set_at(["variants", 1, "modifications"], {"flow_version": "9.9.9"}),
        "/variants/1/modifications/flow_version",
        "has no version 9.9.9 (it has 1.0.0, 1.1.0)",
    ),
    (
        "patched flow does not validate",
        set_at(["variants", 1, "modifications", "merge_patch"], BROKEN_PATCH),
        "/variants/1/modifications/merge_patch/states/greeting/transitions/0/target_state",
        "the patched flow (flow 'pizza' 1.0.0) at /states/greeting/transitions/0/target_state",
    ),
    (
        "patch changes the version",
        set_at(["variants", 1, "modifications", "merge_patch"], {"version": "2.0.0"}),
        "/variants/1/modifications/merge_patch/version",
        "may not change the flow's version",
    ),
    ("duplicate names", set_at(["variants", 1, "name"], "control"), "/variants/1/name", "named twice"),
    ("unknown control", set_at(["control"], "nobody"), "/control", "'nobody' is not one of the variants"),
    ("bad id", set_at(["experiment_id"], "Bad_Id"), "/experiment_id", "pattern"),
    ("one variant", set_at(["variants"], [variant("only", 100)]), "/variants", "at least 2"),
    (
        "share over 100",
        set_at(["variants", 0, "percentage"], 150),
        "/variants/0/percentage",
        "less than or equal",
    ),
    ("unknown field", set_at(["colour"], "red"), "/colour", "unknown field"),
    (
        "unknown modification",
        set_at(["variants", 1, "modifications"], {"flow_versoin": "1.1.0"}),
        "/variants/1/modifications/flow_versoin",
        "unknown field",
    ),
]


@pytest.mark.parametrize(
    ("change", "pointer", "message"), [case[1:] for case in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS]
)
async def test_a_bad_document_is_a_422_saying_where_and_why(
    client: Client,
    engine: ExecutionService,
    change: Callable[[dict[str, Any]], None],
    pointer: str,
    message: str,
) -> None:
    status, body = await call(client, "POST", "/v2/experiments", json=changed(change))
    assert status == 422, body
    assert body["error"]["code"] == "experiment_invalid"
    problems = body["error"]["details"]["problems"]
    assert any(p["pointer"] == pointer and message in p["message"] for p in problems), problems
    assert await engine.store.list_experiments(TENANT) == []


async def test_every_problem_is_reported_at_once(client: Client) -> None:
    def many(doc: dict[str, Any]) -> None:
        doc["variants"][1]["percentage"] = 10
        doc["variants"][1]["modifications"] = {"flow_version": "9.9.9"}
        doc["control"] = "nobody"

    status, body = await call(client, "POST", "/v2/experiments", json=changed(many))
    assert status == 422
    pointers = {p["pointer"] for p in body["error"]["details"]["problems"]}
    assert pointers == {"/variants", "/control", "/variants/1/modifications/flow_version"}


async def test_one_experiment_runs_on_a_flow_at_a_time(client: Client) -> None:
    assert (await call(client, "POST", "/v2/experiments", params={"start": "true"}, json=document()))[
        0
    ] == 201
    second = document("second")
    status, body = await call(client, "POST", "/v2/experiments", params={"start": "true"}, json=second)
    assert status == 422
    [problem] = body["error"]["details"]["problems"]
    assert (problem["pointer"], problem["code"]) == ("/flow_id", "overlap")
    assert "'short-greeting' is already running on flow 'pizza'" in problem["message"]
    status, draft = await call(client, "POST", "/v2/experiments", json=second)  # a draft may wait
    assert (status, draft["problems"][0]["severity"]) == (201, "warning")
    status, body = await call(client, "POST", "/v2/experiments/second/start")
    assert (status, body["error"]["details"]["problems"][0]["code"]) == (422, "overlap")
    await call(client, "POST", "/v2/experiments/short-greeting/stop")
    assert (await call(client, "POST", "/v2/experiments/second/start"))[1]["status"] == "running"


async def test_a_start_checks_again_against_what_is_published_now(
    client: Client, engine: ExecutionService
) -> None:
    assert (await call(client, "POST", "/v2/experiments", json=document()))[0] == 201
    renamed = example_flow("pizza")
    renamed["version"] = "2.0.0"
    renamed["states"]["hello"] = renamed["states"].pop("greeting")
    renamed["initial_state"] = "hello"
    await engine.catalogue.publish_document(renamed)  # the patch now adds a half state "greeting"
    status, body = await call(client, "POST", "/v2/experiments/short-greeting/start")
    assert status == 422
    assert all(
        p["pointer"].startswith("/variants/1/modifications/merge_patch")
        for p in body["error"]["details"]["problems"]
    )
    assert (await call(client, "GET", "/v2/experiments/short-greeting"))[1]["status"] == "draft"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/experiments/nope"),
        ("POST", "/v2/experiments/nope/start"),
        ("POST", "/v2/experiments/nope/stop"),
        ("GET", "/v2/experiments/nope/results"),
    ],
)
async def test_an_unknown_experiment_is_a_404(client: Client, method: str, path: str) -> None:
    status, body = await call(client, method, path)
    assert (status, body["error"]["code"]) == (404, "experiment_not_found")


async def test_the_routes_are_in_the_openapi_document(client: Client) -> None:
    document_ = await (await client.get("/v2/openapi.json")).json()
    for path in (
        "/v2/experiments",
        "/v2/experiments/{experiment_id}",
        "/v2/experiments/{experiment_id}/results",
    ):
        assert path in document_["paths"]
    create = document_["paths"]["/v2/experiments"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ExperimentDefinition"
    )
    assert {"409", "422"} <= set(create["responses"])
    assert "ExperimentResults" in document_["components"]["schemas"]


# --- tenants --------------------------------------------------------------------------------------

A, B = "tenant-a", "tenant-b"


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[tuple[Client, dict[str, str], ExecutionService]]:
    async with open_engine(tmp_path / "engine.db", publish=False) as engine:
        auth = Authenticator(engine.store, "on", None)
        keys = {}
        for tenant in (A, B):
            await auth.create_tenant(tenant)
            keys[tenant] = (await auth.create_key(tenant))[1]
            flow = example_flow("pizza")
            flow["tenant_id"] = tenant
            await engine.catalogue.publish_document(flow)
        await engine.experiments.create(B, document("b-only"), start=True)
        async with rest_client(engine, mode="on") as client:
            yield client, keys, engine


async def as_key(client: Client, key: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)
    return response.status, await response.json()


@pytest.mark.parametrize("action", ["", "/start", "/stop", "/results"])
async def test_a_tenant_cannot_touch_or_detect_anothers_experiment(
    keyed: tuple[Client, dict[str, str], ExecutionService], action: str
) -> None:
    client, keys, engine = keyed
    method = "GET" if action in ("", "/results") else "POST"
    of_b = await as_key(client, keys[A], method, f"/v2/experiments/b-only{action}")
    of_nobody = await as_key(client, keys[A], method, f"/v2/experiments/nobody{action}")
    assert of_b[0] == of_nobody[0] == 404
    assert of_b[1]["error"]["message"].replace("b-only", "<id>") == of_nobody[1]["error"]["message"].replace(
        "nobody", "<id>"
    )
    record = await engine.store.get_experiment(B, "b-only")
    assert record is not None
    assert record.status == "running"


async def test_a_tenant_lists_and_creates_only_its_own(
    keyed: tuple[Client, dict[str, str], ExecutionService],
) -> None:
    client, keys, engine = keyed
    assert (await as_key(client, keys[A], "GET", "/v2/experiments"))[1]["experiments"] == []
    claimed = {**document("a-for-b"), "tenant_id": B}
    status, body = await as_key(client, keys[A], "POST", "/v2/experiments", json=claimed)
    assert (status, body["error"]["code"]) == (403, "permission_denied")
    status, body = await as_key(client, keys[A], "GET", "/v2/experiments", params={"tenant_id": B})
    assert status == 403
    assert await engine.store.get_experiment(B, "a-for-b") is None
    status, own = await as_key(client, keys[A], "POST", "/v2/experiments", json=document("a-own"))
    assert (status, own["tenant_id"]) == (201, A)
    assert [
        e["experiment_id"]
        for e in (await as_key(client, keys[B], "GET", "/v2/experiments"))[1]["experiments"]
    ] == ["b-only"]


# --- gRPC -----------------------------------------------------------------------------------------


async def test_grpc_replies_and_state_carry_the_variant(engine: ExecutionService) -> None:
    await engine.experiments.create(
        TENANT,
        document("all-short", "pizza", variant("control", 0), variant("short", 100, merge_patch=SHORT_PATCH)),
        start=True,
    )
    server, port = await create_server(
        engine, Authenticator(engine.store, "off", None), Limiter(4), "127.0.0.1", 0
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = mcp_pb2_grpc.MCPEngineStub(channel)
            reply = await stub.ProcessMessage(
                mcp_pb2.ProcessMessageRequest(
                    tenant_id=TENANT,
                    conversation_id="g1",
                    user_id="u1",
                    content=mcp_pb2.MessageContent(text="hi"),
                    hints=mcp_pb2.ProcessingHints(force_flow="pizza"),
                )
            )
            assert (reply.ab_variant, reply.messages[0].text) == ("short", SHORT_GREETING)
            state = await stub.GetConversationState(
                mcp_pb2.GetStateRequest(tenant_id=TENANT, conversation_id="g1")
            )
            assert state.ab_variant == "short"
            assert state.flow_version == "1.0.0+all-short.short"
    finally:
        await server.stop(None)

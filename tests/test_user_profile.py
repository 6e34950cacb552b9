"""``user_profile`` on a message (REST body field; gRPC in test_grpc.py): merged into the conversation's
profile as an RFC 7386 merge patch, seen by templates and expressions, shown by GET; bad input refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.engine_fixtures import rest_client
from tests.turnkit import TENANT, flow, go, on, open_engine, response, wait

HEADERS = {"X-Tenant-ID": TENANT}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    engine = await open_engine(tmp_path / "profile.db", MCP_MAX_USER_PROFILE_BYTES=200)
    document = flow(
        "w",
        {
            "w": wait(
                go("vip", "event.text != null and user_profile.tier == 'gold'", priority=1),
                on("any_input", "hello"),
            ),
            "vip": response("Welcome back, {{ user_profile.name }}!", go("w")),
            "hello": response("Hello {{ user_profile.name or 'there' }}.", go("w")),
        },
    )
    await engine.catalogue.publish_document(document, make_default=True)
    try:
        async with rest_client(engine) as client:
            yield client
    finally:
        await engine.close()


async def say(client: TestClient[Any, Any], text: str, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/v2/conversations/c1/messages", json={"content": {"text": text}, **body}, headers=HEADERS
    )
    return response.status, await response.json()


async def test_profile_is_merged_and_read_by_templates_and_expressions(client: TestClient[Any, Any]) -> None:
    status, reply = await say(client, "hi")
    assert (status, reply["response"]["text"]) == (200, "Hello there.")
    _, reply = await say(client, "hi", user_profile={"name": "Ada", "tier": "gold", "langs": ["en"]})
    assert reply["response"]["text"] == "Welcome back, Ada!"
    _, reply = await say(client, "hi", user_profile={"tier": None})  # null removes a key
    assert reply["response"]["text"] == "Hello Ada."
    state = await (await client.get("/v2/conversations/c1", headers=HEADERS)).json()
    assert state["user_profile"] == {"name": "Ada", "langs": ["en"]}
    assert state["context"]["user_profile"] == state["user_profile"]


@pytest.mark.parametrize("profile", [["not", "an", "object"], "text", 3])
async def test_a_profile_that_is_not_an_object_is_refused(client: TestClient[Any, Any], profile: Any) -> None:
    status, body = await say(client, "hi", user_profile=profile)
    assert status == 400
    assert body["error"]["details"]["errors"][0]["loc"] == ["body", "user_profile"]


async def test_a_profile_over_the_bound_is_refused_and_nothing_changes(client: TestClient[Any, Any]) -> None:
    await say(client, "hi", user_profile={"name": "Ada"})
    status, body = await say(client, "hi", user_profile={"notes": "x" * 300})
    assert status == 400
    assert "MCP_MAX_USER_PROFILE_BYTES" in body["error"]["message"]
    assert body["error"]["details"]["field"] == "user_profile"
    state = await (await client.get("/v2/conversations/c1", headers=HEADERS)).json()
    assert state["user_profile"] == {"name": "Ada"}

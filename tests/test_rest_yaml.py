"""Flow documents as YAML over REST (SPEC §2: YAML wherever JSON is): create, validate and draw take
``application/yaml`` (and its aliases), problems carry the body's lines, and a YAML bomb is a clear 422."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from tests.engine_fixtures import example_flow, open_engine, rest_client

DEMO = {"X-Tenant-ID": "demo"}
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with open_engine(tmp_path / "yaml.db") as engine, rest_client(engine) as client:
        yield client


def pizza_yaml(version: str = "3.0.0") -> str:
    return yaml.safe_dump({**example_flow("pizza"), "version": version}, sort_keys=False)


@pytest.mark.parametrize("media", ["application/yaml", "text/yaml", "application/x-yaml"])
async def test_create_and_validate_take_yaml(client: TestClient[Any, Any], media: str) -> None:
    headers = {**DEMO, "Content-Type": media}
    checked = await client.post("/v2/flows/validate", data=pizza_yaml(), headers=headers)
    assert checked.status == 200, await checked.text()
    assert (await checked.json())["valid"] is True
    created = await client.post("/v2/flows", data=pizza_yaml(), headers=headers)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert (body["flow_id"], body["version"]) == ("pizza", "3.0.0")
    stored = await client.get("/v2/flows/pizza/versions/3.0.0", headers=DEMO)
    assert (await stored.json())["document"]["initial_state"] == "greeting"


async def test_yaml_problems_carry_lines(client: TestClient[Any, Any]) -> None:
    text = pizza_yaml().replace("initial_state: greeting", "initial_state: nowhere")
    line = text.splitlines().index("initial_state: nowhere") + 1
    headers = {**DEMO, "Content-Type": "application/yaml"}
    report = await (await client.post("/v2/flows/validate", data=text, headers=headers)).json()
    problem = next(p for p in report["problems"] if p["pointer"] == "/initial_state")
    assert problem["line"] == line
    refused = await client.post("/v2/flows", data=text, headers=headers)
    assert refused.status == 422
    problems = (await refused.json())["error"]["details"]["problems"]
    assert any(p["pointer"] == "/initial_state" and p["line"] == line for p in problems)


async def test_yaml_syntax_error_is_422_with_its_line(client: TestClient[Any, Any]) -> None:
    headers = {**DEMO, "Content-Type": "application/yaml"}
    response = await client.post("/v2/flows", data="flow_id: x\nstates: [1,\n", headers=headers)
    assert response.status == 422
    problem = (await response.json())["error"]["details"]["problems"][0]
    assert problem["code"] == "yaml-syntax"
    assert problem["line"] == 3


async def test_yaml_bomb_is_refused_quickly_and_clearly(client: TestClient[Any, Any]) -> None:
    headers = {**DEMO, "Content-Type": "application/yaml"}
    for path in ("/v2/flows", "/v2/flows/validate", "/v2/flows/graph"):
        response = await client.post(path, data=BOMB, headers=headers)
        assert response.status in (413, 422), path
        error = (await response.json())["error"]
        assert "alias" in error["message"] or "large" in error["message"]
    recursive = await client.post("/v2/flows/validate", data="a: &a [*a]\n", headers=headers)
    assert recursive.status == 422
    # the engine still answers
    assert (await client.get("/v2/flows", headers=DEMO)).status == 200


async def test_yaml_that_is_not_a_mapping_is_a_400(client: TestClient[Any, Any]) -> None:
    headers = {**DEMO, "Content-Type": "application/yaml"}
    response = await client.post("/v2/flows/validate", data="- just\n- a list\n", headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_argument"


async def test_json_body_problems_get_lines_too(client: TestClient[Any, Any]) -> None:
    import json

    document = {**example_flow("pizza"), "initial_state": "nowhere"}
    text = json.dumps(document, indent=2)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if '"initial_state"' in row)
    response = await client.post(
        "/v2/flows/validate", data=text, headers={**DEMO, "Content-Type": "application/json"}
    )
    problem = next(p for p in (await response.json())["problems"] if p["pointer"] == "/initial_state")
    assert problem["line"] == line


async def test_openapi_lists_yaml_for_flow_documents(client: TestClient[Any, Any]) -> None:
    document = await (await client.get("/v2/openapi.json")).json()
    content = document["paths"]["/v2/flows"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/yaml"} <= set(content)
    messages = document["paths"]["/v2/conversations/{conversation_id}/messages"]["post"]
    assert set(messages["requestBody"]["content"]) == {"application/json"}

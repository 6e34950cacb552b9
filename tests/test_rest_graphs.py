"""``GET /v2/flows/{id}/graph`` (a chosen version, the ``json`` format) and ``POST /v2/flows/graph`` (a
document drawn unsaved), through the real app: what the playground draws and lights comes from here."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.engine_fixtures import example_flow, open_engine
from tests.test_rest_api import DEMO, client_for, error_of, pizza

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
SVG_G = "{http://www.w3.org/2000/svg}g"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with open_engine(tmp_path / "graphs.db") as engine, client_for(engine) as client:
        yield client


def broken(version: str = "3.0.0") -> dict[str, Any]:
    document = pizza(version)
    document["states"]["take_order"]["transitions"][1]["target_state"] = "pick_unit_prize"
    return document


async def test_json_names_each_state(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v2/flows/pizza/graph", params={"format": "json"}, headers=DEMO)
    assert response.status == 200
    assert response.content_type == "application/json"
    data = await response.json()
    assert (data["flow_id"], data["version"]) == ("pizza", "1.0.0")
    states = {node["state"] for node in data["nodes"] if node["state"] is not None}
    assert states == set(example_flow("pizza")["states"])


async def test_a_chosen_version_is_drawn(client: TestClient[Any, Any]) -> None:
    draft = pizza("2.0.0", name="Pizza two")
    draft["states"]["extra"] = {"type": "end"}
    assert (await client.post("/v2/flows", json=draft, headers=DEMO)).status == 201
    published = await client.get("/v2/flows/pizza/graph", params={"format": "json"}, headers=DEMO)
    assert (await published.json())["version"] == "1.0.0"  # the published one by default
    chosen = await client.get("/v2/flows/pizza/graph?format=json&version=2.0.0", headers=DEMO)
    data = await chosen.json()
    assert (data["version"], data["title"]) == ("2.0.0", "Pizza two v2.0.0")
    assert "extra" in {node["state"] for node in data["nodes"]}
    missing = await client.get("/v2/flows/pizza/graph?version=9.9.9", headers=DEMO)
    await error_of(missing, 404, "flow_not_found")
    bad = await client.get("/v2/flows/pizza/graph?version=latest", headers=DEMO)
    assert (await error_of(bad, 400))["details"]["errors"][0]["loc"] == ["query", "version"]


async def test_another_tenant_cannot_draw_the_flow(client: TestClient[Any, Any]) -> None:
    response = await client.get(
        "/v2/flows/pizza/graph", params={"format": "json"}, headers={"X-Tenant-ID": "b"}
    )
    await error_of(response, 404, "flow_not_found")


async def test_a_document_with_reference_errors_is_drawn_unsaved(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v2/flows/graph?format=json", json=broken(), headers=DEMO)
    assert response.status == 200, await response.text()
    data = await response.json()
    (missing,) = [node for node in data["nodes"] if node["kind"] == "missing"]
    assert missing["state"] == "pick_unit_prize"
    edge = next(e for e in data["edges"] if (e["state"], e["transition"]) == ("take_order", 1))
    assert edge["target"] == missing["id"]
    assert (await client.get("/v2/flows/pizza/versions/3.0.0", headers=DEMO)).status == 404  # not stored


async def test_mermaid_is_the_default_format_of_a_drawn_document(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v2/flows/graph", json=broken(), headers=DEMO)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "flowchart TD" in await response.text()


@needs_graphviz
async def test_the_svg_of_a_drawn_document_carries_the_json_ids(client: TestClient[Any, Any]) -> None:
    svg = await client.post("/v2/flows/graph?format=svg", json=broken(), headers=DEMO)
    assert svg.content_type == "image/svg+xml"
    data = await (await client.post("/v2/flows/graph?format=json", json=broken(), headers=DEMO)).json()
    root = ET.fromstring(await svg.text())
    drawn = {g.get("id") for g in root.iter(SVG_G) if g.get("class") in ("node", "edge")}
    assert drawn == {node["id"] for node in data["nodes"]} | {edge["id"] for edge in data["edges"]}


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        ({"flow_id": "x", "tenant_id": "demo"}, "/name"),
        ({**pizza(), "states": {"a": {"type": "response", "transitions": "no"}}}, "/states/a/transitions"),
    ],
    ids=["fields missing", "wrong type"],
)
async def test_a_document_that_is_not_a_flow_is_422_with_its_problems(
    client: TestClient[Any, Any], document: dict[str, Any], pointer: str
) -> None:
    response = await client.post("/v2/flows/graph?format=svg", json=document, headers=DEMO)
    error = await error_of(response, 422, "flow_invalid")
    assert pointer in {p["pointer"] for p in error["details"]["problems"]}


async def test_a_drawn_document_must_be_the_callers(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v2/flows/graph", json=broken(), headers={"X-Tenant-ID": "other"})
    await error_of(response, 403, "permission_denied")
    not_json = await client.post(
        "/v2/flows/graph", data=b"{not json", headers={**DEMO, "Content-Type": "application/json"}
    )
    await error_of(not_json, 400)

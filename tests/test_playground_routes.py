"""``/playground``'s files as ``serve`` mounts them: every file the page names is served with a strict
Content-Security-Policy, nothing else is reachable, and ``ENABLE_VISUAL_DESIGNER=false`` removes it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from mcp_engine.api.playground.routes import STATIC, playground_routes
from mcp_engine.config import EngineSettings
from mcp_engine.serve import EngineServer
from tests.engine_fixtures import engine_settings, open_engine
from tests.test_rest_api import client_for


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with (
        open_engine(tmp_path / "playground.db") as engine,
        client_for(engine, extra_routes=playground_routes()) as client,
    ):
        yield client


def referenced() -> set[str]:
    """Every file the page loads: the page's own links and scripts, and each module's imports."""
    names = set(re.findall(r'(?:href|src)="/playground/([\w.]+)"', (STATIC / "index.html").read_text()))
    for script in STATIC.glob("*.js"):
        names |= set(re.findall(r'from "\./([\w.]+)"', script.read_text()))
    return names


async def test_the_page_and_every_file_it_names_are_served(client: TestClient[Any, Any]) -> None:
    names = referenced()
    assert {"playground.css", "main.js", "api.js", "graph.js"} <= names
    assert names <= {path.name for path in STATIC.iterdir()}
    for path in ("/playground", "/playground/"):
        page = await client.get(path)
        assert page.status == 200
        assert page.content_type == "text/html"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    for name in sorted(names):
        response = await client.get(f"/playground/{name}")
        assert response.status == 200, name
        expected = "text/css" if name.endswith(".css") else "text/javascript"
        assert response.content_type == expected
        assert await response.read() == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/playground/nothing.js",
        "/playground/..%2Froutes.py",
        "/playground/../routes.py",
        "/playground/x/main.js",
    ],
)
async def test_nothing_else_is_reachable(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_the_page_carries_no_data(client: TestClient[Any, Any]) -> None:
    """The same bytes for everyone: what a tenant sees comes from /v2 with its own credentials."""
    anonymous = await (await client.get("/playground")).read()
    named = await (await client.get("/playground", headers={"X-Tenant-ID": "demo"})).read()
    assert anonymous == named
    assert b"pizza" not in anonymous


@pytest.mark.parametrize(("enabled", "status"), [(True, 200), (False, 404)])
async def test_enable_visual_designer_setting(tmp_path: Path, enabled: bool, status: int) -> None:
    settings = engine_settings(
        sqlite_path=str(tmp_path / "serve.db"), http_port=0, grpc_port=0, enable_visual_designer=enabled
    )
    server = EngineServer(settings)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.http_port}/playground") as response:
                assert response.status == status
            async with http.get(f"http://127.0.0.1:{server.http_port}/v2/health") as response:
                assert response.status == 200
    finally:
        await server.stop()


def test_the_setting_reads_the_seed_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EngineSettings().enable_visual_designer is True
    monkeypatch.setenv("ENABLE_VISUAL_DESIGNER", "false")
    assert EngineSettings().enable_visual_designer is False

"""Fixtures shared by the runtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mcp_engine.runtime.execution import ExecutionService
from tests.plugin_kit import Install, installed_site
from tests.turnkit import open_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    """An engine on a fresh SQLite file, with no flows published."""
    engine = await open_engine(tmp_path / "engine.db")
    yield engine
    await engine.close()


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """Install fake third-party distributions by name (``install("carousel")``) for this test."""
    with installed_site(tmp_path / "site-packages", monkeypatch) as installer:
        yield installer

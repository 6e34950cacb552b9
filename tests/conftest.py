"""Fixtures shared by the runtime tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_engine.runtime.execution import ExecutionService
from tests.turnkit import open_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    """An engine on a fresh SQLite file, with no flows published."""
    engine = await open_engine(tmp_path / "engine.db")
    yield engine
    await engine.close()

"""Third-party plugins for tests, installed for real: ``*.dist-info`` directories (METADATA +
entry_points.txt) and their modules from ``tests/fake_dists``, copied onto a fresh ``sys.path`` entry, so
discovery goes through ``importlib.metadata`` and stevedore exactly as for a pip-installed plugin.

``installed_site`` does the installing (the ``install`` fixture of conftest.py wraps it per test);
``carousel_flow`` is a flow using the ``carousel`` distribution's state type and action.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mcp_engine.plugin_manager import LOAD_PLUGINS_ENV
from tests.flowdocs import minimal_flow

FAKE_DISTS = Path(__file__).resolve().parent / "fake_dists"
FAKE_MODULES = {path.stem for path in FAKE_DISTS.glob("fake_*.py")}

Install = Callable[..., None]


@contextmanager
def installed_site(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """An installer of fake distributions (by name: ``install("carousel")``) into ``site``, which is put
    first on ``sys.path``; third-party loading is left unset (every installed plugin loads)."""
    site.mkdir(parents=True, exist_ok=True)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(LOAD_PLUGINS_ENV, raising=False)

    def install(*names: str) -> None:
        for name in names:
            (dist_info,) = FAKE_DISTS.glob(f"mcp_engine_{name}-*.dist-info")
            shutil.copytree(dist_info, site / dist_info.name)
            shutil.copy(FAKE_DISTS / f"fake_{name}.py", site)
        importlib.invalidate_caches()

    try:
        yield install
    finally:
        for module in FAKE_MODULES:
            sys.modules.pop(module, None)


def carousel_flow() -> dict[str, Any]:
    """The minimal flow with one state of the third-party type, running the third-party action."""
    doc = minimal_flow()
    helping = doc["states"]["helping"]
    helping.update(type="carousel", config={"items": ["tea", "cake"]})
    helping["entry_actions"] = [{"type": "send_sms", "to": "+33600000000"}]
    return doc

"""Grants for an engine that runs for one developer (``mcp-engine chat``, flow tests' throwaway engines).

The developer is the operator there: such an engine grants the flows' tenant every secret they name and
any address, so a flow that calls a local mock (``http://127.0.0.1:8081``) runs as written. The engine's
own configuration and its own ports stay refused, as everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from mcp_engine.config import EngineSettings
from mcp_engine.security.secrets import referenced

ANY_ADDRESS = "*:0.0.0.0/0,::/0"


def developer_settings(settings: EngineSettings, documents: Iterable[object]) -> EngineSettings:
    """``settings`` granting every tenant any address and every secret ``documents`` reference."""
    names = sorted(set().union(*(referenced(document) for document in documents)))
    grants = {"grant_outbound": ANY_ADDRESS}
    if names:
        grants["grant_secrets"] = "*:" + ",".join(names)
    return settings.model_copy(update=grants)

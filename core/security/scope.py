"""The services one tenant's plugins get: its granted secrets and its URL policy, nothing more.

Every plugin instance of a tenant's compiled flow (integration clients, its classifier) is made with the
tenant's ``TenantServices``: ``env`` holds only the secrets granted to it (``SecretView``), ``http()`` is a
session whose connector checks each resolved address against the tenant's URL policy. The catalogue
refreshes the grants from the tenant's settings (at most ``TENANT_CACHE_S`` old), so a revoked grant
stops working without recompiling anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from mcp_engine.flow.models import CircuitBreaker
from mcp_engine.runtime.breaker import Breaker
from mcp_engine.runtime.services import EngineServices
from mcp_engine.security.grants import GrantBook, Grants
from mcp_engine.security.secrets import SecretView
from mcp_engine.security.urls import OutboundPolicy


class TenantServices:
    """``mcp_engine.Services`` for one tenant."""

    def __init__(self, engine: EngineServices, book: GrantBook, tenant_id: str, grants: Grants) -> None:
        self.tenant_id = tenant_id
        self._engine, self._book = engine, book
        self.grants = grants
        self.env: Mapping[str, str] = SecretView(engine.env, frozenset(grants.secrets))
        self.policy: OutboundPolicy = book.policy(grants)

    def update(self, grants: Grants) -> None:
        """Take the tenant's current grants (a no-op when they did not change)."""
        if grants != self.grants:
            self.grants = grants
            self.env = SecretView(self._engine.env, frozenset(grants.secrets))
            self.policy = self._book.policy(grants)

    def http(self) -> aiohttp.ClientSession:
        return self._engine.outbound_session(self.policy)

    def now(self) -> float:
        return self._engine.now()

    def breaker(self, scope: tuple[str, ...], label: str, policy: CircuitBreaker) -> Breaker:
        return self._engine.breaker(scope, label, policy)

    async def write_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        await self._engine.write_events(events)

"""The engine's ``Services`` (``mcp_engine.Services``): what plugins share, made once per engine.

One HTTP client session, the environment (secrets), a clock, circuit breakers, and a way to append
analytics events to the engine's own store; closed with the engine. A plugin reaches them through the
``services`` it was given, and nothing else of the engine: the store itself is never handed out. A tenant's
plugins get a narrower view (``mcp_engine.security.scope.TenantServices``): its granted secrets, and
``outbound_session`` of its URL policy, whose connector checks every address it connects to.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from mcp_engine.flow.models import CircuitBreaker
from mcp_engine.runtime.breaker import Breaker, BreakerBoard

if TYPE_CHECKING:
    from mcp_engine.security.urls import OutboundPolicy

EventWriter = Callable[[list[dict[str, Any]]], Awaitable[None]]


class EngineServices:
    def __init__(self, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._events: EventWriter | None = None
        self._outbound: dict[int, tuple[OutboundPolicy, aiohttp.ClientSession]] = {}
        self.breakers = BreakerBoard(clock)

    def http(self) -> aiohttp.ClientSession:
        """The engine's shared aiohttp session, opened on first use inside the running event loop."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
                raise_for_status=False,
            )
        return self._http

    def outbound_session(self, policy: OutboundPolicy) -> aiohttp.ClientSession:
        """The session for calls a tenant's flows make: one per policy (its own pool and DNS cache, so no
        connection checked under one policy serves another), each connection checked by the policy."""
        found = self._outbound.get(id(policy))
        if found is None or found[1].closed:
            connector = aiohttp.TCPConnector(
                limit=100, ttl_dns_cache=300, socket_factory=policy.socket_factory
            )
            found = self._outbound[id(policy)] = (policy, aiohttp.ClientSession(connector=connector))
        return found[1]

    def now(self) -> float:
        return self._clock()

    def breaker(self, scope: tuple[str, ...], label: str, policy: CircuitBreaker) -> Breaker:
        return self.breakers.breaker(scope, label, policy)

    def keep_events_in(self, writer: EventWriter) -> None:
        """Where ``write_events`` appends: the engine's store (``Store.record_events``)."""
        self._events = writer

    async def write_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        if self._events is None:
            raise RuntimeError("this engine keeps no analytics events (no store behind its services)")
        await self._events([dict(event) for event in events])

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None
        for _, session in self._outbound.values():
            await session.close()
        self._outbound.clear()

"""Circuit breakers: stop calling a service that keeps failing, for a while, then try it again.

One breaker per integration of a flow (tenant + flow + integration id) and per Model Orchestrator endpoint.
Closed, it lets every call through and counts failed ones (timeout, http_5xx, network: the service is
down or overloaded; a 4xx or a mapping error says nothing about its health) in a window that starts at
the first failure and lasts ``window_ms``; ``failure_threshold`` failures in one window open it. Open, it
fails each call at once (``circuit_open``) for ``reset_timeout_ms``; then it is half-open and lets
``half_open_max_calls`` trial calls through at a time: one success closes it, one failure opens it again.
Trials that never report back (their process died) are given up after another ``reset_timeout_ms``.

Where the state lives is a ``BreakerStore``: per process here (the embedded store), or in Redis for every
engine process on the production store (``mcp_engine.store.redis_breaker``). No library fitted both (as of
writing: aiobreaker and pybreaker keep shared state through a synchronous Redis client, purgatory has no
failure window and admits one trial only), so the state machine is this module, and the Redis side is the
same rules in two small Lua scripts. A breaker store that cannot answer never blocks a call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote

from mcp_engine.contract import CircuitGuard, IntegrationClient, IntegrationRequest, IntegrationResult
from mcp_engine.flow.models import CircuitBreaker

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
STATE_VALUES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}  # the metrics gauge's values
FAILURE_KINDS = frozenset({"timeout", "http_5xx", "network"})


class BreakerStore(Protocol):
    """Where breakers keep their state. Both calls are atomic per key."""

    async def acquire(self, key: str, policy: CircuitBreaker, now_ms: int) -> tuple[bool, BreakerState]:
        """May a call go through now? And the breaker's state (open turns half-open here)."""
        ...

    async def record(self, key: str, policy: CircuitBreaker, ok: bool, now_ms: int) -> BreakerState:
        """Count a call's outcome; the state it leaves the breaker in."""
        ...


class BreakerObserver(Protocol):
    """What is told of every breaker decision (the engine's metrics)."""

    def breaker_observed(self, label: str, state: BreakerState, rejected: bool) -> None: ...


@dataclass
class _Slot:
    state: BreakerState = "closed"
    failures: int = 0
    window_start: int = 0
    changed_at: int = 0  # when it opened, or when the current round of trials began
    trials: int = 0


class LocalBreakerStore:
    """The embedded store's breakers: this process's memory (one engine process per SQLite file)."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    async def acquire(self, key: str, policy: CircuitBreaker, now_ms: int) -> tuple[bool, BreakerState]:
        slot = self._slots.get(key)
        if slot is None or slot.state == "closed":
            return True, "closed"
        if slot.state == "open":
            if now_ms < slot.changed_at + policy.reset_timeout_ms:
                return False, "open"
            slot.state, slot.changed_at, slot.trials = "half_open", now_ms, 0
        elif _trials_lost(slot, policy, now_ms):
            slot.changed_at, slot.trials = now_ms, 0  # the trials never reported back
        if slot.trials >= policy.half_open_max_calls:
            return False, "half_open"
        slot.trials += 1
        return True, "half_open"

    async def record(self, key: str, policy: CircuitBreaker, ok: bool, now_ms: int) -> BreakerState:
        slot = self._slots.get(key)
        if slot is None:
            if ok:
                return "closed"
            slot = self._slots[key] = _Slot()
        if ok:
            if slot.state == "half_open":
                del self._slots[key]
                return "closed"
            return slot.state
        if slot.state == "half_open":
            slot.state, slot.changed_at, slot.trials = "open", now_ms, 0
        elif slot.state == "closed":
            if slot.failures == 0 or now_ms >= slot.window_start + policy.window_ms:
                slot.failures, slot.window_start = 0, now_ms
            slot.failures += 1
            if slot.failures >= policy.failure_threshold:
                slot.state, slot.changed_at, slot.trials, slot.failures = "open", now_ms, 0, 0
        return slot.state


def _trials_lost(slot: _Slot, policy: CircuitBreaker, now_ms: int) -> bool:
    return slot.trials >= policy.half_open_max_calls and now_ms >= slot.changed_at + policy.reset_timeout_ms


class BreakerBoard:
    """The engine's breakers: where their state lives, who is told, the clock. One per engine."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.store: BreakerStore = LocalBreakerStore()
        self.observer: BreakerObserver | None = None
        self._clock = clock

    def breaker(self, scope: tuple[str, ...], label: str, policy: CircuitBreaker) -> Breaker:
        """The breaker of ``scope`` (e.g. ``("integration", tenant, flow, integration_id)``); ``label``
        names it in metrics and logs."""
        return Breaker(self, ":".join(quote(part, safe="") for part in scope), label, policy)

    def now_ms(self) -> int:
        return int(self._clock() * 1000)


class Breaker:
    def __init__(self, board: BreakerBoard, key: str, label: str, policy: CircuitBreaker) -> None:
        self.board, self.key, self.label, self.policy = board, key, label, policy

    async def allow(self) -> bool:
        """Whether a call may go through now; when not, the caller fails it as ``circuit_open``."""
        return (await self._acquire())[0]

    async def _acquire(self) -> tuple[bool, BreakerState]:
        allowed, state = await self.board.store.acquire(self.key, self.policy, self.board.now_ms())
        self._observe(state, not allowed)
        return allowed, state

    async def record(self, ok: bool) -> None:
        """Report the outcome of a call ``allow`` let through."""
        state = await self.board.store.record(self.key, self.policy, ok, self.board.now_ms())
        self._observe(state, False)

    async def call(self, client: IntegrationClient, request: IntegrationRequest) -> IntegrationResult:
        allowed, state = await self._acquire()
        if not allowed:
            return IntegrationResult(
                ok=False,
                error="circuit_open",
                message=f"the circuit breaker of '{self.label}' is open: the call was not made",
                attempts=0,
            )
        result = await client.call(request)
        ok = result.ok or result.error not in FAILURE_KINDS
        if not ok or state != "closed":  # a success while closed changes nothing: no second round trip
            await self.record(ok)
        return result

    def _observe(self, state: BreakerState, rejected: bool) -> None:
        if self.board.observer is not None:
            self.board.observer.breaker_observed(self.label, state, rejected)


class GuardedClient(IntegrationClient):
    """An integration client behind its breaker: what a compiled flow holds for each integration."""

    name = "guarded"

    def __init__(self, client: IntegrationClient, breaker: CircuitGuard) -> None:
        super().__init__(client.integration, client.services)
        self.client, self.breaker = client, breaker

    async def call(self, request: IntegrationRequest) -> IntegrationResult:
        return await self.breaker.call(self.client, request)

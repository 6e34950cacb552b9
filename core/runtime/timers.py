"""Server-side timeouts (SPEC §6): the loop that finds due timers and fires each one once.

Any engine process may fire a timer: the store's ``claim_timer`` leases it to one caller at a time, across
every process on the store, and only the commit of the turn that fires it removes it, so a process that
dies holding a timer loses nothing (another fires it when the lease ends) and the context's record of the
wait it belongs to keeps it from firing twice. Firing it is a turn of its own
(``ExecutionService.fire_timer``): the ``timeout`` event delivered to the state that armed it, what that
sends handed to the tenant's outbound webhook (``runtime.outbound``, whose retries this loop makes too)
and kept in the conversation's history. ``serve`` runs one
loop per process (``run_timers``); ``chat`` and tests fire what is due when they choose
(``fire_due_timers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from mcp_engine.errors import EngineError

if TYPE_CHECKING:
    from mcp_engine.runtime.execution import ExecutionService

log = logging.getLogger(__name__)


async def fire_due_timers(engine: ExecutionService, now: float | None = None) -> list[dict[str, Any]]:
    """Fire every timer due at ``now`` that this engine can claim; what each fired timer sent:
    ``{"tenant_id", "conversation_id", "messages"}``."""
    fired: list[dict[str, Any]] = []
    for timer in await engine.store.due_timers(time.time() if now is None else now):
        if not await engine.store.claim_timer(timer):
            continue
        try:
            messages = await engine.fire_timer(timer)
        except EngineError as exc:
            log.warning("timer of %s not fired: %s", timer.conversation_id, exc.message)
            continue
        if messages is not None:
            fired.append(
                {"tenant_id": timer.tenant_id, "conversation_id": timer.conversation_id, "messages": messages}
            )
    return fired


async def run_timers(engine: ExecutionService, stop: asyncio.Event) -> None:
    """Fire due timers every ``MCP_TIMER_POLL_MS`` until ``stop`` is set (one loop per engine process)."""
    interval = engine.settings.timer_poll_ms / 1000
    while not stop.is_set():
        try:
            await fire_due_timers(engine)
            await engine.outbound.deliver_due()  # retries of webhook deliveries that failed (or were lost)
        except Exception:  # the loop must outlive a store hiccup
            log.exception("timer loop")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)

"""``MAX_PARALLEL_EXECUTIONS``: a bound on turns in flight, ordered by the ``priority`` hint when full.

A ``normal`` turn past the bound gets ``Overloaded`` (503 / UNAVAILABLE with Retry-After) immediately, so
load sheds at the edge and callers retry elsewhere. The hint changes that only at the margins, and nothing
waits in an unbounded queue:
- ``high``: when every slot is taken it waits, at most ``high_wait_s`` and at most ``max_parallel`` of them,
  for the next slot that frees, ahead of anything else; only then is it refused.
- ``low``: takes a slot only while at least ``LOW_HEADROOM`` of them are free, so under load it is shed
  first and normal and high turns keep their slots; below that load it runs like any other turn (it is
  never starved while the engine has room).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, get_args

from mcp_engine.errors import InvalidInput, Overloaded

Priority = Literal["low", "normal", "high"]
PRIORITIES: tuple[str, ...] = get_args(Priority)
LOW_HEADROOM = 0.1  # the share of slots that must be free for a low-priority turn
HIGH_WAIT_S = 1.0


def priority_of(hint: str) -> Priority:
    """The ``priority`` hint as a ``Priority`` ("" is normal); ``InvalidInput`` names the known ones."""
    if hint == "":
        return "normal"
    if hint not in PRIORITIES:
        raise InvalidInput(
            f"hints.priority must be one of {', '.join(PRIORITIES)}, not '{hint}'",
            {"field": "hints.priority"},
        )
    return hint  # type: ignore[return-value]


class Limiter:
    def __init__(self, max_parallel: int, retry_after_s: int = 1, high_wait_s: float = HIGH_WAIT_S) -> None:
        self.max_parallel = max_parallel
        self.retry_after_s = retry_after_s
        self.high_wait_s = high_wait_s
        self.in_flight = 0
        self.low_needs = max(1, math.ceil(max_parallel * LOW_HEADROOM))  # free slots a low turn needs
        self._waiting: deque[asyncio.Future[None]] = deque()  # high-priority turns, oldest first

    @asynccontextmanager
    async def slot(self, priority: Priority = "normal") -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        free = self.max_parallel - self.in_flight
        if free >= (self.low_needs if priority == "low" else 1) and not self._waiting:
            self.in_flight += 1
            return
        if priority != "high" or len(self._waiting) >= self.max_parallel:
            raise self._overloaded()
        handed = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        try:
            async with asyncio.timeout(self.high_wait_s):
                await handed
        except TimeoutError:
            if handed.done() and not handed.cancelled():
                return  # the slot was handed over as the wait ran out: it is this turn's
            raise self._overloaded() from None
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self._release()  # handed over to a caller that has gone: pass it on
            raise
        finally:
            if handed in self._waiting:
                self._waiting.remove(handed)

    def _release(self) -> None:
        """Hand the slot to the oldest waiting high-priority turn, else free it."""
        while self._waiting:
            handed = self._waiting.popleft()
            if not handed.done():
                handed.set_result(None)
                return
        self.in_flight -= 1

    def _overloaded(self) -> Overloaded:
        return Overloaded(
            f"more than {self.max_parallel} turns in flight (MAX_PARALLEL_EXECUTIONS); retry shortly",
            self.retry_after_s,
        )

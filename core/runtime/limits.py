"""``MAX_PARALLEL_EXECUTIONS``: a bound on turns in flight that refuses at once instead of queueing.

A turn past the bound gets ``Overloaded`` (503 / UNAVAILABLE with Retry-After) immediately, so load
sheds at the edge and callers retry elsewhere; nothing waits in an unbounded queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp_engine.errors import Overloaded


class Limiter:
    def __init__(self, max_parallel: int, retry_after_s: int = 1) -> None:
        self.max_parallel = max_parallel
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.in_flight >= self.max_parallel:
            raise Overloaded(
                f"more than {self.max_parallel} turns in flight (MAX_PARALLEL_EXECUTIONS); retry shortly",
                self.retry_after_s,
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

"""Per-conversation locks in one process: FIFO, handed over at once, made on demand.

The embedded store's locks are these alone (several processes on one SQLite file are kept correct by the
compare-and-set instead). The production store queues a process's turns of one conversation here before
they contend for the Redis lock: one contender per process instead of one per message, in arrival order,
with no backoff sleeps between turns of a process (10 hot conversations at 64 in flight: p99 from 1.3 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from mcp_engine.errors import ConversationBusy


class ConversationLocks:
    """Per-conversation asyncio locks, made on demand and dropped once nobody holds or waits for them,
    so memory follows the number of busy conversations, not of every conversation ever served."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _LockEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, tenant_id: str, conversation_id: str, timeout_s: float) -> AsyncIterator[None]:
        key = (tenant_id, conversation_id)
        entry = self._entries.setdefault(key, _LockEntry())
        entry.users += 1
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    await entry.lock.acquire()
            except TimeoutError:
                raise ConversationBusy(
                    f"conversation '{conversation_id}' is busy: no turn for it within {timeout_s:g} s",
                    {"conversation_id": conversation_id},
                ) from None
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.users -= 1
            if not entry.users:
                del self._entries[key]


@dataclass
class _LockEntry:
    """A conversation's lock and how many tasks hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0

"""Per-conversation locks in one process: FIFO, handed over at once, made on demand.

The embedded store's locks are these alone (several processes on one SQLite file are kept correct by the
compare-and-set instead). The production store queues a process's turns of one conversation here before
they contend for the Redis lock: one contender per process instead of one per message, in arrival order,
with no backoff sleeps between turns of a process (10 hot conversations at 64 in flight: p99 from 1.3 s).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType

from mcp_engine.errors import ConversationBusy


class ConversationLocks:
    """Per-conversation asyncio locks, made on demand and dropped once nobody holds or waits for them,
    so memory follows the number of busy conversations, not of every conversation ever served."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _LockEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def hold(self, tenant_id: str, conversation_id: str, timeout_s: float) -> _Held:
        """``async with locks.hold(...)``: the conversation's lock, or ``ConversationBusy`` after
        ``timeout_s``."""
        return _Held(self._entries, (tenant_id, conversation_id), timeout_s)


class _Held:
    """One hold of a conversation's lock. A class rather than ``@asynccontextmanager`` (a turn takes one
    on its way in): no generator, and a free lock (nobody else holding or waiting) is taken at once,
    with no timeout to arm."""

    __slots__ = ("_entries", "_entry", "_key", "_timeout_s")

    def __init__(self, entries: dict[tuple[str, str], _LockEntry], key: tuple[str, str], timeout_s: float):
        self._entries, self._key, self._timeout_s = entries, key, timeout_s

    async def __aenter__(self) -> None:
        entry = self._entries.get(self._key)
        if entry is None:
            entry = self._entries[self._key] = _LockEntry()
        self._entry = entry
        entry.users += 1
        if entry.users == 1:  # nobody else holds it or waits for it
            await entry.lock.acquire()
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await entry.lock.acquire()
        except BaseException as exc:
            self._leave()
            if isinstance(exc, TimeoutError):
                raise ConversationBusy(
                    f"conversation '{self._key[1]}' is busy: no turn for it within {self._timeout_s:g} s",
                    {"conversation_id": self._key[1]},
                ) from None
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._entry.lock.release()
        self._leave()

    def _leave(self) -> None:
        self._entry.users -= 1
        if not self._entry.users:
            del self._entries[self._key]


@dataclass
class _LockEntry:
    """A conversation's lock and how many tasks hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0

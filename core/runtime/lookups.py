"""What a new run looks up in the store (the tenant's default flow; the flow's published version and the
experiment running on it), cached in process while the store's catalogue stamp stays the same.

Every new run asked the store for both: on the production store two PostgreSQL round trips, more than the
turn's own write. A change to any of them, in any process sharing the store, gives the catalogue a new
stamp (``Store.catalogue_stamp``: a count kept by SQLite triggers in the changing transaction, or a fresh
token in Redis once PostgreSQL committed); a new run reads the stamp (one local read, or one Redis GET)
and uses a cached value only when it was read under the same stamp, so a publish in one process is seen by
every other from its next new run on. An entry also ages out after ``MAX_AGE_S``, which bounds how long a
process that died between PostgreSQL's commit and Redis's new stamp can leave others behind. Entries are
per tenant and flow (never per conversation), at most ``SIZE`` of them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from mcp_engine.store.base import Store

MAX_AGE_S = 5.0
SIZE = 10_000
T = TypeVar("T")


class StampedLookups:
    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._entries: dict[Hashable, tuple[str, float, Any]] = {}

    async def stamp(self, bypass_cache: bool = False) -> str | None:
        """The store's stamp for this turn's lookups; None (look everything up) with ``bypass_cache``."""
        return None if bypass_cache else await self.store.catalogue_stamp()

    async def get(self, key: Hashable, stamp: str | None, look_up: Callable[[], Awaitable[T]]) -> T:
        """``look_up()``'s value, from the cache when it was read under ``stamp`` (None: always asked)."""
        now = self._clock()
        cached = self._entries.get(key)
        if stamp is not None and cached is not None and cached[0] == stamp and cached[1] > now:
            value: T = cached[2]
            return value
        value = await look_up()
        if stamp is not None:
            if len(self._entries) >= SIZE:
                self._entries.clear()  # many tenants x flows: start over rather than grow without bound
            self._entries[key] = (stamp, now + MAX_AGE_S, value)
        return value

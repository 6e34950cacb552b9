"""Engine-wide resources that plugins share: one HTTP client session per engine, the environment and
the clock.

Made once per engine and closed with it; a plugin reaches them through the ``services`` it was given.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from mcp_engine.store.base import Store


class Services:
    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.clock = clock  # a turn's "now" (epoch seconds): natural dates, timers; flow tests fix it
        self.store: Store | None = (
            store  # the engine's store, for plugins that keep what they receive (the store sink)
        )
        self._http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        """The engine's shared aiohttp session, opened on first use inside the running event loop."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
                raise_for_status=False,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

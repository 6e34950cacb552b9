"""The outbound channel (SPEC §8): what a timer's turn says, POSTed to the tenant's ``outbound_webhook``.

Delivered at least once: the delivery is stored (``Store.add_delivery``) before its first attempt and
deleted only when the webhook answers 2xx, so a process that dies, or a receiver that is down for a while,
loses nothing — each attempt leases the stored delivery (one process at a time, like timers), a failed
one stores when to try again (exponential backoff with jitter, from ``MCP_WEBHOOK_BACKOFF_MS``, at most
``MCP_WEBHOOK_MAX_ATTEMPTS`` attempts), and the timer loop of every engine process retries what is due.

Every attempt sends the same bytes with the same ``X-MCP-Delivery-Id``, so a receiver deduplicates by it;
``X-MCP-Timestamp`` is the attempt's time (epoch seconds) and, when the tenant has a ``webhook_secret``,
``X-MCP-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` proves the engine sent it (a receiver
also checks the timestamp is recent, so an old request cannot be replayed). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from mcp_engine.config import EngineSettings
from mcp_engine.store.base import Delivery, Store, Tenant

log = logging.getLogger(__name__)

LEASE_S = 60.0  # longer than one attempt (its timeout): another process retries once it has passed
MAX_BACKOFF_S = 600.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-MCP-Signature`` value of ``body`` sent at ``timestamp`` (what a receiver recomputes)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class Outbound:
    def __init__(
        self,
        store: Store,
        settings: EngineSettings,
        tenant: Callable[[str], Awaitable[Tenant | None]],
        session: Callable[[str], Awaitable[aiohttp.ClientSession]],
    ) -> None:
        self.store, self.settings = store, settings
        self._tenant = tenant  # the catalogue's (cached) tenant lookup
        self._session = session  # the tenant's: its URL policy checks every connection (mcp_engine.security)
        self._timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_ms / 1000)
        self._tasks: set[asyncio.Task[None]] = set()
        self.abandoned = 0

    async def enqueue(self, tenant_id: str, conversation_id: str, messages: list[dict[str, Any]]) -> None:
        """Store a delivery of ``messages`` (when the tenant has a webhook) and make its first attempt in
        the background; once this returns, the delivery survives a restart."""
        tenant = await self._tenant(tenant_id)
        if not messages or tenant is None or not tenant.outbound_webhook:
            return
        now = time.time()
        delivery_id = uuid.uuid4().hex
        body = orjson.dumps(
            {
                "delivery_id": delivery_id,
                "tenant_id": tenant_id,
                "conversation_id": conversation_id,
                "messages": messages,
                "created_at": now,
            }
        )
        delivery = Delivery(delivery_id, tenant_id, conversation_id, body, 0, now + LEASE_S, now)
        await self.store.add_delivery(delivery)  # leased to this process from the start
        task = asyncio.get_running_loop().create_task(self._attempt(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver_due(self, now: float | None = None) -> int:
        """Attempt every stored delivery that is due and that this process can claim, all at once (so the
        timer loop waits at most one webhook timeout); how many."""
        now = time.time() if now is None else now
        claimed = [
            delivery
            for delivery in await self.store.due_deliveries(now)
            if await self.store.claim_delivery(delivery, now + LEASE_S, now)
        ]
        await asyncio.gather(*(self._attempt(delivery, now) for delivery in claimed))
        return len(claimed)

    async def _attempt(self, delivery: Delivery, now: float | None = None) -> None:
        tenant = await self._tenant(delivery.tenant_id)
        if tenant is None or not tenant.outbound_webhook:
            log.warning("outbound delivery %s dropped: the tenant has no webhook now", delivery.delivery_id)
            await self.store.finish_delivery(delivery.delivery_id)
            return
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-MCP-Delivery-Id": delivery.delivery_id,
            "X-MCP-Timestamp": timestamp,
            "X-MCP-Attempt": str(delivery.attempts + 1),
        }
        if tenant.webhook_secret:
            headers["X-MCP-Signature"] = signature(tenant.webhook_secret, timestamp, delivery.body)
        try:
            session = await self._session(delivery.tenant_id)
            async with session.post(
                tenant.outbound_webhook,
                data=delivery.body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                reason = "" if 200 <= response.status < 300 else f"HTTP {response.status}"
        except TimeoutError:
            reason = f"no answer within {self.settings.webhook_timeout_ms} ms"
        except aiohttp.ClientError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if not reason:
            await self.store.finish_delivery(delivery.delivery_id)
            return
        await self._failed(delivery, reason, time.time() if now is None else now)

    async def _failed(self, delivery: Delivery, reason: str, now: float) -> None:
        attempts = delivery.attempts + 1
        if attempts >= self.settings.webhook_max_attempts:
            self.abandoned += 1
            log.error(
                "outbound delivery %s of tenant %s abandoned after %d attempts: %s",
                delivery.delivery_id,
                delivery.tenant_id,
                attempts,
                reason,
            )
            await self.store.finish_delivery(delivery.delivery_id)
            return
        backoff = min(self.settings.webhook_backoff_ms / 1000 * 2 ** (attempts - 1), MAX_BACKOFF_S)
        next_at = now + backoff * (0.5 + random.random() / 2)
        log.warning(
            "outbound delivery %s failed (attempt %d: %s); next in %.3g s",
            delivery.delivery_id,
            attempts,
            reason,
            next_at - now,
        )
        await self.store.defer_delivery(delivery.delivery_id, attempts, next_at)

    async def drain(self) -> None:
        """Wait for the first attempts in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

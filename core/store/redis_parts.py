"""The production store's Redis side: context cache, conversation locks, idempotency cache, timer schedule.

PostgreSQL is the source of truth for everything here, so losing every key (``FLUSHALL``, a restart without
persistence) loses nothing: a cache miss reads PostgreSQL, an unknown idempotency record is looked up there,
and the timer schedule is rebuilt from the ``timers`` table. Keys of a conversation share the hash tag
``{tenant:conversation}`` (both percent-quoted, so no id can fake another's key) and hence one Redis Cluster
slot; every key starts with the configurable prefix so several deployments (or tests) share one Redis.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal
from urllib.parse import quote

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcp_engine.errors import ConversationBusy
from mcp_engine.store.base import Conversation, Timer

log = logging.getLogger(__name__)

# A cached context is a hash {v: version, c: context JSON, or "" after a reset}. Writes only ever move the
# version forward, so a slow writer finishing late cannot put an older context back over a newer one.
_CACHE_SET = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Unschedule a fired timer only if the schedule still holds that due time (not a newer timer's).
_UNSCHEDULE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisParts:
    """The keys and scripts of one store's Redis side (``prefix`` holds no ``{`` or ``}``)."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        cache_ttl_s: float,
        idempotency_ttl_s: float,
        lock_lease_s: float,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.cache_ttl_ms = _ms(cache_ttl_s)
        self.idempotency_ttl_ms = _ms(idempotency_ttl_s)
        self.lock_lease_s = lock_lease_s
        self.timers_key = f"{prefix}:timers"
        self.synced_key = f"{prefix}:timers:synced"
        self._cache_set = client.register_script(_CACHE_SET)
        self._unlock = client.register_script(_UNLOCK)
        self._extend = client.register_script(_EXTEND)
        self._unschedule = client.register_script(_UNSCHEDULE)

    # keys
    @staticmethod
    def member(tenant_id: str, conversation_id: str) -> str:
        """The conversation's name in keys and in the timer schedule: unambiguous whatever the ids hold."""
        return f"{quote(tenant_id, safe='')}:{quote(conversation_id, safe='')}"

    def key(self, kind: str, tenant_id: str, conversation_id: str) -> str:
        return f"{self.prefix}:{kind}:{{{self.member(tenant_id, conversation_id)}}}"

    def idempotency_key(self, tenant_id: str, conversation_id: str, message_id: str) -> str:
        return f"{self.key('idem', tenant_id, conversation_id)}:{quote(message_id, safe='')}"

    # context cache
    async def cached(self, tenant_id: str, conversation_id: str) -> Conversation | bool | None:
        """The cached conversation, None when the cache knows it was reset, False on a miss."""
        fields: list[bytes | None] = await self.client.hmget(  # type: ignore[misc]
            self.key("ctx", tenant_id, conversation_id), ["v", "c"]
        )
        version, context = fields
        if version is None or context is None:
            return False
        if not context:
            return None
        return Conversation(tenant_id, conversation_id, orjson.loads(context), int(version))

    async def cache(self, tenant_id: str, conversation_id: str, version: int, context: bytes | None) -> None:
        """Cache ``context`` at ``version`` unless a newer version is cached (None: reset, not there)."""
        await self._cache_set(
            keys=[self.key("ctx", tenant_id, conversation_id)],
            args=[version, context or b"", self.cache_ttl_ms],
        )

    async def after_commit(
        self,
        tenant_id: str,
        conversation_id: str,
        version: int,
        context: bytes,
        reply: tuple[str, bytes] | None,
        timer: Timer | Literal["keep"] | None,
    ) -> None:
        """Mirror a committed turn in one round trip: cached context, idempotency record, schedule."""
        pipe = self.client.pipeline(transaction=False)
        await self._cache_set(
            keys=[self.key("ctx", tenant_id, conversation_id)],
            args=[version, context, self.cache_ttl_ms],
            client=pipe,
        )
        if reply is not None:
            message_id, body = reply
            pipe.set(
                self.idempotency_key(tenant_id, conversation_id, message_id), body, px=self.idempotency_ttl_ms
            )
        if isinstance(timer, Timer):
            pipe.zadd(self.timers_key, {self.member(tenant_id, conversation_id): timer.due_at})
        elif timer is None:
            pipe.zrem(self.timers_key, self.member(tenant_id, conversation_id))
        await pipe.execute()

    # idempotency
    async def reply(self, tenant_id: str, conversation_id: str, message_id: str) -> bytes | None:
        body: bytes | None = await self.client.get(
            self.idempotency_key(tenant_id, conversation_id, message_id)
        )
        return body

    # timers
    async def schedule_state(self, now: float) -> tuple[bool, bool]:
        """(the schedule is known complete, something in it is due): PostgreSQL needs asking unless it is
        complete and nothing is due; once its ``synced`` mark expired or was flushed it is rebuilt."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.synced_key)
        pipe.zrangebyscore(self.timers_key, "-inf", now, start=0, num=1)
        synced, due = await pipe.execute()
        return bool(synced), bool(due)

    async def rebuild(self, timers: list[Timer], valid_s: float) -> None:
        """Replace the schedule by ``timers`` (every one PostgreSQL holds), trusted for ``valid_s``: a timer
        whose ``ZADD`` was lost (a crash right after its commit) is scheduled again by the next rebuild."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.timers_key)
        if timers:
            pipe.zadd(
                self.timers_key, {self.member(t.tenant_id, t.conversation_id): t.due_at for t in timers}
            )
        pipe.set(self.synced_key, b"1", px=_ms(valid_s))
        await pipe.execute()

    async def unschedule(self, timer: Timer) -> None:
        await self._unschedule(
            keys=[self.timers_key], args=[self.member(timer.tenant_id, timer.conversation_id), timer.due_at]
        )

    async def forget(self, tenant_id: str, conversation_id: str, version: int | None) -> None:
        """After a reset: cache the reset (at its new version) and drop the conversation's timer."""
        pipe = self.client.pipeline(transaction=False)
        if version is not None:
            await self._cache_set(
                keys=[self.key("ctx", tenant_id, conversation_id)],
                args=[version, b"", self.cache_ttl_ms],
                client=pipe,
            )
        pipe.zrem(self.timers_key, self.member(tenant_id, conversation_id))
        await pipe.execute()

    # locks
    @asynccontextmanager
    async def lock(self, tenant_id: str, conversation_id: str, timeout_s: float) -> AsyncIterator[None]:
        """Hold the conversation's lock across processes: ``SET NX PX`` with a random token, kept alive
        while held (so the lease can be short and a crashed holder's lock frees soon), released only by
        its holder."""
        key = self.key("lock", tenant_id, conversation_id)
        token = secrets.token_hex(16)
        lease_ms = _ms(self.lock_lease_s)
        deadline = time.monotonic() + timeout_s
        backoff = 0.002
        while not await self.client.set(key, token, nx=True, px=lease_ms):
            left = deadline - time.monotonic()
            if left <= 0:
                holder = await self.client.pttl(key)
                log.info("conversation %s busy: lock held for %s ms more", conversation_id, holder)
                raise ConversationBusy(
                    f"conversation '{conversation_id}' is busy: no turn for it within {timeout_s:g} s",
                    {"conversation_id": conversation_id},
                )
            await asyncio.sleep(min(left, backoff * random.uniform(0.5, 1.5)))
            backoff = min(backoff * 2, 0.05)
        keeper = asyncio.create_task(self._keep(key, token, lease_ms))
        try:
            yield
        finally:
            keeper.cancel()
            try:
                await self._unlock(keys=[key], args=[token])
            except RedisError:
                # The turn is over (committed or not); an unreleased lock frees itself after its lease,
                # so Redis going away now must not turn a finished turn into an error.
                log.warning("lock %s not released (Redis unreachable): it expires with its lease", key)

    async def _keep(self, key: str, token: str, lease_ms: int) -> None:
        """Extend the lease every third of it while the holder runs; warn once it was lost."""
        while True:
            await asyncio.sleep(lease_ms / 3000)
            try:
                extended = await self._extend(keys=[key], args=[token, lease_ms])
            except RedisError:
                extended = 0  # Redis away: the lease cannot be kept, and the fencing CAS still protects
            if not extended:
                log.warning("lock %s expired while held: another process may run this conversation", key)
                return

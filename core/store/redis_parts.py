"""The production store's Redis side: context cache, conversation locks, idempotency cache, timer schedule.

PostgreSQL is the source of truth for everything here, so losing every key (``FLUSHALL``, a restart without
persistence) loses nothing: a cache miss reads PostgreSQL (the context and the conversation's live
idempotency records, cached again together), and the timer schedule is rebuilt from the ``timers`` table.
Keys of a conversation share the hash tag ``{tenant:conversation}`` (both percent-quoted, so no id can fake
another's key) and hence one Redis Cluster slot; every key starts with the configurable prefix so several
deployments (or tests) share one Redis.

A turn makes two round trips here (ARCHITECTURE.md, "Stores"): ``begin`` checks the message's idempotency
record, takes the lock and reads the cached context in one script; ``mirror`` caches the committed context
with its idempotency record and releases the lock in another. A cached context vouches for its
conversation's records (they are written together, and refilled together after a miss), so a message id
that Redis does not know needs no PostgreSQL lookup. That holds while Redis does not evict keys on its own:
run it with ``maxmemory-policy noeviction`` (docs/operators.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from mcp_engine.errors import ConversationBusy
from mcp_engine.store.base import Conversation, Timer

log = logging.getLogger(__name__)
T = TypeVar("T")

# A cached context is a hash {v: version, c: context JSON, or "" after a reset}. Writes only ever move the
# version forward, so a slow writer finishing late cannot put an older context back over a newer one.
_CACHE_SET = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# A turn's first round trip. KEYS: lock, context, [idempotency record]; ARGV: token, lease ms.
# {1, reply}: the message was processed (no lock taken); {0, pttl}: busy; {2, version, context}: locked.
_BEGIN = """
if KEYS[3] then
  local reply = redis.call('GET', KEYS[3])
  if reply then return {1, reply} end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
local cached = redis.call('HMGET', KEYS[2], 'v', 'c')
return {2, cached[1], cached[2]}
"""
# A committed turn, mirrored. KEYS: context, lock, [idempotency record]; ARGV: version, context, cache
# ttl ms, token ("": no lock to release), reply, idempotency ttl ms. The context as in _CACHE_SET; the
# record with the context, so a cached context means every live record of its conversation is here too.
_MIRROR = """
local current = redis.call('HGET', KEYS[1], 'v')
if not current or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6]) end
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
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
# Move a timer in the schedule only if the schedule still holds that time (not a newer timer's): to ARGV[3]
# (a claimed timer, due again when its lease ends), or out of the schedule when no ARGV[3] is given.
_RESCHEDULE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] then return redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


def milliseconds(seconds: float) -> int:
    """A duration for Redis (PX, PEXPIRE): whole milliseconds, at least one."""
    return max(1, int(seconds * 1000))


@dataclass
class Began:
    """What a turn's first round trip found: the stored reply of its message (then no lock is held), or
    the held lock and the cached conversation (``False``: not cached; ``None``: cached as reset)."""

    held: HeldLock | None
    reply: bytes | None = None
    cached: Conversation | Literal[False] | None = False


class HeldLock:
    """A conversation lock this process holds. Its lease is extended every third of it while held, by a
    timer rather than a task, so a turn shorter than that (nearly all) pays nothing for the keeping."""

    def __init__(self, parts: RedisParts, key: str, token: str, lease_ms: int) -> None:
        self.key, self.token = key, token
        self.released = False
        self._parts, self._lease_ms = parts, lease_ms
        self._loop = asyncio.get_running_loop()
        self._extending: asyncio.Task[None] | None = None
        self._timer = self._loop.call_later(lease_ms / 3000, self._extend_soon)

    def _extend_soon(self) -> None:
        self._extending = self._loop.create_task(self._extend())

    async def _extend(self) -> None:
        try:
            extended = await self._parts.extend(self.key, self.token, self._lease_ms)
        except RedisError:
            extended = 0  # Redis away: the lease cannot be kept, and the fencing CAS still protects
        if self.released:
            return
        if not extended:
            log.warning("lock %s expired while held: another process may run this conversation", self.key)
            return
        self._timer = self._loop.call_later(self._lease_ms / 3000, self._extend_soon)

    def stop_keeping(self) -> None:
        self._timer.cancel()
        if self._extending is not None:
            self._extending.cancel()

    async def release(self) -> None:
        """Release it unless a mirrored commit already did; never raises (the turn is over by now)."""
        if self.released:
            return
        self.stop_keeping()
        self.released = True
        try:
            await self._parts.unlock(self.key, self.token)
        except RedisError:
            # An unreleased lock frees itself after its lease, so Redis going away now must not turn a
            # finished turn into an error.
            log.warning("lock %s not released (Redis unreachable): it expires with its lease", self.key)


@dataclass
class _Busy:
    """A lock attempt that found the lock held, for how many more milliseconds (None: not asked)."""

    pttl: int | None


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
        self.cache_ttl_ms = milliseconds(cache_ttl_s)
        self.idempotency_ttl_ms = milliseconds(idempotency_ttl_s)
        self.lock_lease_ms = milliseconds(lock_lease_s)
        self.timers_key = f"{prefix}:timers"
        self.catalogue_key = f"{prefix}:catalogue"
        self.synced_key = f"{prefix}:timers:synced"
        self._cache_set = client.register_script(_CACHE_SET)
        self._begin = client.register_script(_BEGIN)
        self._mirror = client.register_script(_MIRROR)
        self._unlock = client.register_script(_UNLOCK)
        self._extend = client.register_script(_EXTEND)
        self._reschedule = client.register_script(_RESCHEDULE)

    # keys
    @staticmethod
    @functools.lru_cache(maxsize=4096)  # a turn names its conversation in four keys
    def member(tenant_id: str, conversation_id: str) -> str:
        """The conversation's name in keys and in the timer schedule: unambiguous whatever the ids hold."""
        return f"{quote(tenant_id, safe='')}:{quote(conversation_id, safe='')}"

    def key(self, kind: str, tenant_id: str, conversation_id: str) -> str:
        return f"{self.prefix}:{kind}:{{{self.member(tenant_id, conversation_id)}}}"

    def idempotency_key(self, tenant_id: str, conversation_id: str, message_id: str) -> str:
        return f"{self.key('idem', tenant_id, conversation_id)}:{quote(message_id, safe='')}"

    # the turn: one round trip to start it, one to mirror its commit and release its lock
    async def begin(
        self, tenant_id: str, conversation_id: str, message_id: str | None, timeout_s: float
    ) -> Began:
        """Take the conversation's lock and read its cached context in one script, unless its message was
        processed already; retried with backoff while another process holds the lock."""
        keys = [self.key("lock", tenant_id, conversation_id), self.key("ctx", tenant_id, conversation_id)]
        if message_id is not None:
            keys.append(self.idempotency_key(tenant_id, conversation_id, message_id))
        token = secrets.token_hex(16)

        async def attempt() -> Began | _Busy:
            found: list[Any] = await self._begin(keys=keys, args=[token, self.lock_lease_ms])
            if found[0] == 0:
                return _Busy(found[1])
            if found[0] == 1:
                return Began(None, reply=found[1])
            held = HeldLock(self, keys[0], token, self.lock_lease_ms)
            return Began(held, cached=_conversation(tenant_id, conversation_id, found[1], found[2]))

        return await self._acquire(attempt, conversation_id, timeout_s)

    async def mirror(
        self,
        tenant_id: str,
        conversation_id: str,
        version: int,
        context: bytes,
        record: tuple[str, bytes] | None,
        timer: Timer | Literal["keep"] | None,
        held: HeldLock | None = None,
    ) -> None:
        """Mirror a committed turn in one round trip: cached context, idempotency record, schedule, and
        the release of ``held``."""
        keys = [self.key("ctx", tenant_id, conversation_id), self.key("lock", tenant_id, conversation_id)]
        reply = b""
        if record is not None:
            keys.append(self.idempotency_key(tenant_id, conversation_id, record[0]))
            reply = record[1]
        token = held.token if held is not None else ""
        args: list[bytes | str | int] = [
            version,
            context,
            self.cache_ttl_ms,
            token,
            reply,
            self.idempotency_ttl_ms,
        ]
        if held is not None:
            held.stop_keeping()
        if timer == "keep":
            await self._mirror(keys=keys, args=args)
        else:
            member = self.member(tenant_id, conversation_id)
            await self._pipelined(
                self._mirror,
                keys,
                args,
                lambda pipe: (
                    pipe.zadd(self.timers_key, {member: timer.due_at})
                    if isinstance(timer, Timer)
                    else pipe.zrem(self.timers_key, member)
                ),
            )
        if held is not None:
            held.released = True

    # the catalogue's stamp: a fresh random token each change, so a flushed and re-set key never repeats one
    async def stamp(self) -> str | None:
        token: bytes | None = await self.client.get(self.catalogue_key)
        return None if token is None else token.decode()

    async def restamp(self) -> None:
        await self.client.set(self.catalogue_key, secrets.token_hex(8))

    # context cache
    async def cached(self, tenant_id: str, conversation_id: str) -> Conversation | Literal[False] | None:
        """The cached conversation, None when the cache knows it was reset, False on a miss."""
        fields: list[bytes | None] = await self.client.hmget(  # type: ignore[misc]
            self.key("ctx", tenant_id, conversation_id), ["v", "c"]
        )
        return _conversation(tenant_id, conversation_id, *fields)

    async def refill(
        self,
        tenant_id: str,
        conversation_id: str,
        version: int,
        context: bytes | None,
        records: list[tuple[str, bytes, int]],
    ) -> None:
        """Cache what PostgreSQL holds of a conversation: its context (None: reset) at ``version`` unless a
        newer one is cached, and its live idempotency records (message id, reply, ms left), so that a
        cached context keeps meaning that every live record of the conversation is cached too."""
        await self._pipelined(
            self._cache_set,
            [self.key("ctx", tenant_id, conversation_id)],
            [version, context or b"", self.cache_ttl_ms],
            lambda pipe: [
                pipe.set(self.idempotency_key(tenant_id, conversation_id, message_id), reply, px=left_ms)
                for message_id, reply, left_ms in records
            ],
        )

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
        pipe.set(self.synced_key, b"1", px=milliseconds(valid_s))
        await pipe.execute()

    async def reschedule(self, timer: Timer, scheduled_at: float, to: float | None) -> None:
        """Move ``timer`` from ``scheduled_at`` to ``to`` in the schedule (None: out of it), unless the
        schedule holds another time for its conversation by now (a newer timer's)."""
        await self._reschedule(
            keys=[self.timers_key],
            args=[
                self.member(timer.tenant_id, timer.conversation_id),
                scheduled_at,
                *(() if to is None else (to,)),
            ],
        )

    async def forget(self, tenant_id: str, conversation_id: str, version: int | None) -> None:
        """After a reset: cache the reset (at its new version) and drop the conversation's timer."""
        member = self.member(tenant_id, conversation_id)
        if version is None:
            await self.client.zrem(self.timers_key, member)
            return
        await self._pipelined(
            self._cache_set,
            [self.key("ctx", tenant_id, conversation_id)],
            [version, b"", self.cache_ttl_ms],
            lambda pipe: pipe.zrem(self.timers_key, member),
        )

    # locks
    @asynccontextmanager
    async def lock(self, tenant_id: str, conversation_id: str, timeout_s: float) -> AsyncIterator[None]:
        """Hold the conversation's lock across processes: ``SET NX PX`` with a random token, kept alive
        while held (so the lease can be short and a crashed holder's lock frees soon), released only by
        its holder."""
        key = self.key("lock", tenant_id, conversation_id)
        token = secrets.token_hex(16)

        async def attempt() -> HeldLock | _Busy:
            if await self.client.set(key, token, nx=True, px=self.lock_lease_ms):
                return HeldLock(self, key, token, self.lock_lease_ms)
            return _Busy(None)  # the holder's time left is not worth a round trip per attempt

        held = await self._acquire(attempt, conversation_id, timeout_s)
        try:
            yield
        finally:
            await held.release()

    async def extend(self, key: str, token: str, lease_ms: int) -> int:
        """Extend the lease of the lock ``key`` if ``token`` still holds it: 1 if so, else 0."""
        return int(await self._extend(keys=[key], args=[token, lease_ms]))

    async def unlock(self, key: str, token: str) -> None:
        """Release the lock ``key`` if ``token`` still holds it (never another holder's)."""
        await self._unlock(keys=[key], args=[token])

    async def _acquire(
        self, attempt: Callable[[], Awaitable[T | _Busy]], conversation_id: str, timeout_s: float
    ) -> T:
        """``attempt`` until it is not busy, with jittered exponential backoff, for at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        backoff = 0.002
        while True:
            result = await attempt()
            if not isinstance(result, _Busy):
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                held_for = "" if result.pttl is None else f" for {result.pttl} ms more"
                log.info("conversation %s busy: its lock is held%s", conversation_id, held_for)
                raise ConversationBusy(
                    f"conversation '{conversation_id}' is busy: no turn for it within {timeout_s:g} s",
                    {"conversation_id": conversation_id},
                )
            await asyncio.sleep(min(left, backoff * random.uniform(0.5, 1.5)))
            backoff = min(backoff * 2, 0.05)

    async def _pipelined(
        self, script: AsyncScript, keys: list[str], args: list[Any], more: Callable[[Pipeline], Any]
    ) -> None:
        """``script`` and the commands ``more`` adds, in one round trip. redis-py's own way of running a
        script in a pipeline asks ``SCRIPT EXISTS`` first, a second round trip every time; here the
        script is sent by its hash and loaded only when Redis answers that it does not know it."""
        for loaded in (False, True):
            pipe = self.client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            more(pipe)
            results = await pipe.execute(raise_on_error=False)
            if isinstance(results[0], NoScriptError) and not loaded:
                await self.client.script_load(script.script)
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return


def _conversation(
    tenant_id: str, conversation_id: str, version: bytes | None, context: bytes | None
) -> Conversation | Literal[False] | None:
    """A cached context hash's fields as a conversation: None when cached as reset, False when missing."""
    if version is None or context is None:
        return False
    if not context:
        return None
    return Conversation(tenant_id, conversation_id, orjson.loads(context), int(version))

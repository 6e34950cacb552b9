"""Circuit breakers shared by every engine process on the production store: ``BreakerStore`` on Redis.

The same rules as ``mcp_engine.runtime.breaker.LocalBreakerStore``, each call one Lua script, so two
processes deciding at once see one state. A breaker is a hash ``{s: state, f: failures, w: window start,
t: opened / trials began, n: trials}`` under ``<prefix>:breaker:<key>``; a closed breaker without failures
is no key at all, and every key expires once nothing can depend on it any more. A Redis that cannot
answer lets the call through (a breaker must never be what takes a service down).
"""

from __future__ import annotations

import logging
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcp_engine.flow.models import CircuitBreaker
from mcp_engine.runtime.breaker import BreakerState

log = logging.getLogger(__name__)

# KEYS: breaker; ARGV: now ms, reset timeout ms, half-open max calls, ttl ms. {allowed 0/1, state}
_ACQUIRE = """
local h = redis.call('HMGET', KEYS[1], 's', 't', 'n')
local s = h[1] or 'closed'
if s == 'closed' then return {1, 'closed'} end
local now, reset, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local changed, trials = tonumber(h[2] or '0'), tonumber(h[3] or '0')
if s == 'open' then
  if now < changed + reset then return {0, 'open'} end
  s, changed, trials = 'half_open', now, 0
elseif trials >= most and now >= changed + reset then
  changed, trials = now, 0
end
if trials >= most then return {0, 'half_open'} end
redis.call('HSET', KEYS[1], 's', s, 't', changed, 'n', trials + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, s}
"""
# KEYS: breaker; ARGV: now ms, ok 1/0, failure threshold, window ms, ttl ms. The state after.
_RECORD = """
local h = redis.call('HMGET', KEYS[1], 's', 'f', 'w')
local s = h[1] or 'closed'
local now = tonumber(ARGV[1])
if ARGV[2] == '1' then
  if s == 'half_open' then redis.call('DEL', KEYS[1]); return 'closed' end
  return s
end
if s == 'half_open' then
  redis.call('HSET', KEYS[1], 's', 'open', 't', now, 'n', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 'open'
end
if s == 'open' then return 'open' end
local failures, start = tonumber(h[2] or '0'), tonumber(h[3] or '0')
if failures == 0 or now >= start + tonumber(ARGV[4]) then failures, start = 0, now end
failures = failures + 1
if failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 's', 'open', 't', now, 'n', 0, 'f', 0)
  s = 'open'
else
  redis.call('HSET', KEYS[1], 's', 'closed', 'f', failures, 'w', start)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return s
"""


def _ttl_ms(policy: CircuitBreaker) -> int:
    """Longer than anything a breaker's fields are compared against: the window, two reset timeouts."""
    return policy.window_ms + 2 * policy.reset_timeout_ms + 60_000


class RedisBreakerStore:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._record = client.register_script(_RECORD)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:breaker:{key}"

    async def acquire(self, key: str, policy: CircuitBreaker, now_ms: int) -> tuple[bool, BreakerState]:
        args = [now_ms, policy.reset_timeout_ms, policy.half_open_max_calls, _ttl_ms(policy)]
        try:
            allowed, state = await self._acquire(keys=[self._key(key)], args=args)
        except RedisError as exc:
            log.warning("circuit breaker %s: Redis did not answer (%s); the call goes through", key, exc)
            return True, "closed"
        return bool(allowed), cast(BreakerState, state.decode())

    async def record(self, key: str, policy: CircuitBreaker, ok: bool, now_ms: int) -> BreakerState:
        args = [now_ms, int(ok), policy.failure_threshold, policy.window_ms, _ttl_ms(policy)]
        try:
            state = await self._record(keys=[self._key(key)], args=args)
        except RedisError as exc:
            log.warning("circuit breaker %s: Redis did not answer (%s); outcome not counted", key, exc)
            return "closed"
        return cast(BreakerState, state.decode())

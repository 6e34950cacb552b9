"""``redis_stream``: hands every turn's events to a Redis stream (``XADD ... MAXLEN ~``) for consumers.

A deployment on the production store already runs Redis, so a stream there is the cheapest way to feed
analytics consumers (consumer groups, replay from an id) without another service. The stream is capped
approximately (``MAXLEN ~``): exact trimming costs Redis work on every add, and a consumer that falls
further behind than the cap has lost the events either way.

The sink never fails a turn: ``SinkFanout`` runs it in the background, and a Redis outage only raises
here (short socket timeouts, so a dead Redis costs a batch little), where the fan-out counts and logs it.
Configuration comes from the environment (``SinkFanout`` builds sinks with their defaults): ``REDIS_URL``
and the key prefix ``MCP_REDIS_PREFIX``, so the stream ``{prefix}:events`` sits next to the store's keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from mcp_engine import EventSink, Services, hookimpl

DEFAULT_PREFIX = "mcp"


class RedisStreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, description="Redis URL; default: the REDIS_URL environment variable")
    stream: str | None = Field(
        None, description="Stream key; default: '{MCP_REDIS_PREFIX}:events' (prefix 'mcp' when unset)"
    )
    maxlen: int = Field(100_000, ge=1, description="Approximate cap on the stream's length (MAXLEN ~)")
    timeout_ms: int = Field(
        1_000, ge=1, le=60_000, description="Connect and socket timeout: how long an outage can hold a batch"
    )


class RedisStreamSink(EventSink):
    name = "redis_stream"
    description = "Appends analytics events to a Redis stream (XADD with an approximate MAXLEN)."
    Config = RedisStreamConfig

    def __init__(self, config: RedisStreamConfig, services: Services) -> None:
        super().__init__(config, services)
        url = config.url or services.env.get("REDIS_URL")
        if not url:
            # Named at engine start, not at the first turn: a sink that could never deliver is a
            # configuration error the operator should see at once.
            raise ValueError("the 'redis_stream' event sink needs a Redis URL: set REDIS_URL")
        self.url = url
        prefix = services.env.get("MCP_REDIS_PREFIX") or DEFAULT_PREFIX
        self.stream = config.stream or f"{prefix}:events"
        self.maxlen = config.maxlen
        self.timeout_s = config.timeout_ms / 1000
        self._client: Redis | None = None

    def _redis(self) -> Redis:
        """The client, made on first use: inside the running event loop, and not at all if never used."""
        if self._client is None:
            self._client = Redis.from_url(
                self.url, socket_connect_timeout=self.timeout_s, socket_timeout=self.timeout_s
            )
        return self._client

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        """One round trip per batch: every event is one stream entry with its ``type``, ``tenant_id`` and
        the whole event as JSON (``event``), so consumers can filter without decoding."""
        if not events:
            return
        pipe = self._redis().pipeline(transaction=False)
        for event in events:
            fields: dict[Any, Any] = {  # redis-py types field names and values as a broad union
                "type": str(event.get("type", "")),
                "tenant_id": str(event.get("tenant_id", "")),
                "event": orjson.dumps(event, default=str),
            }
            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        await pipe.execute()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


@hookimpl
def mcp_engine_event_sinks() -> list[type[EventSink]]:
    return [RedisStreamSink]

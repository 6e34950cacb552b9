"""The stack's own floor on the production stores, and the served production engine against it.

The floor handler is a bare gRPC ``ProcessMessage`` servicer (the same messages as the engine's) doing
what any turn on PostgreSQL + Redis must at least do, on the libraries the engine is built on: validate the
request with pydantic (the REST request model), one Redis GET and one SET of a 2 KB context, one
PostgreSQL INSERT of a 2 KB JSONB row (asyncpg, a pool of 10 like the engine's), and a pydantic dump of
the reply. The engine is ``mcp-engine serve`` on PostgreSQL + Redis running the pizza happy path. Both on
the same event loop (uvloop where installed), each its own process, loaded from a third one.
"""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from redis.asyncio import Redis

from benchmarks.client import SCRIPT, TIME_LIMIT_S, load_client
from benchmarks.grpc_turns import reply_like_the_engine, serve_grpc
from benchmarks.load import (
    POSTGRES_URI,
    REDIS_URL,
    Plan,
    against_baselines,
    bare_server,
    served_engines,
    sync_backing,
)
from benchmarks.report import Section, Target
from mcp_engine.api.grpc import mcp_pb2_grpc
from mcp_engine.api.rest.models import MessageReply, MessageRequest

CONTEXT = {"slots": {"size": "large", "count": 2}, "variables": {"blob": "x" * 1900}, "current_state": "s"}
TARGET_RATIO = 0.7
TARGET_P99_FACTOR = 1.5  # the engine's p99 against the floor handler's, at the same concurrency


class Floor(mcp_pb2_grpc.MCPEngineServicer):
    """A turn reduced to its round trips and its validation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pool: Any = None
        self.redis: Any = None

    async def open(self) -> None:
        async def no_reset(_conn: Any) -> None:
            """The engine's pool keeps sessions as they are too (no reset query per release)."""

        self.pool = await asyncpg.create_pool(
            POSTGRES_URI, min_size=10, max_size=10, server_settings={"search_path": self.name}, reset=no_reset
        )
        await self.pool.execute(f"CREATE SCHEMA IF NOT EXISTS {self.name}")
        await self.pool.execute(
            f"CREATE TABLE IF NOT EXISTS {self.name}.floor_turns"
            " (seq bigserial PRIMARY KEY, conversation_id text NOT NULL, context jsonb NOT NULL)"
        )
        self.redis = Redis.from_url(REDIS_URL)

    async def ProcessMessage(self, request: Any, context: Any) -> Any:
        body = MessageRequest.model_validate(
            {
                "tenant_id": request.tenant_id,
                "content": {"type": request.content.type or "text", "text": request.content.text},
                "hints": {"force_flow": request.hints.force_flow or None},
            }
        )
        key = f"{self.name}:floor:{{{request.conversation_id}}}"
        await self.redis.get(key)
        state = orjson.dumps({**CONTEXT, "last": body.content.text})
        await self.redis.set(key, state, px=60_000)
        await self.pool.execute(
            f"INSERT INTO {self.name}.floor_turns (conversation_id, context) VALUES ($1, $2::jsonb)",
            request.conversation_id,
            state.decode(),
        )
        reply = reply_like_the_engine(request)
        MessageReply.model_validate(
            {
                "conversation_id": reply.conversation_id,
                "current_state": reply.current_state,
                "response": {"type": "text", "text": reply.response.text, "attributes": {}},
                "messages": [{"type": "text", "text": reply.response.text, "attributes": {}}],
                "context_updates": {"slots.size": "large"},
                "actions_performed": list(reply.actions_performed),
                "confidence_scores": dict(reply.confidence_scores),
                "processing_time_ms": 0,
                "ab_variant": "",
                "flow_id": reply.flow_id,
                "flow_version": reply.flow_version,
            }
        ).model_dump_json()
        return reply


def _floor_server(port: int, name: str) -> None:
    floor = Floor(name)
    serve_grpc(floor, port, floor.open)


def run(quick: bool = False) -> Section:
    plan = Plan.of(quick)
    with (
        sync_backing() as name,
        served_engines("production") as production,
        bare_server(_floor_server, name) as floor,
        load_client() as client,
    ):
        rows, ratios, figures = against_baselines(
            client,
            {"engine, production": ("grpc", production.grpc_ports), "floor handler": ("grpc", (floor,))},
            {"engine, production": "floor handler"},
            plan,
        )
    level = 16
    p99 = figures[str(level)]["engine, production_p99_ms"]  # type: ignore[index]
    floor_p99 = figures[str(level)]["floor handler_p99_ms"]  # type: ignore[index]
    ratio = ratios["engine, production"]
    return Section(
        "The stack's floor on PostgreSQL + Redis vs the served production engine (gRPC)",
        ["server", "in flight", "calls/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [
            Target(
                f"production engine ≥ {TARGET_RATIO:.0%} of the floor handler at {n} in flight",
                f"{ratio[n]:.0%}",
                ratio[n] >= TARGET_RATIO,
            )
            for n in plan.levels
        ]
        + [
            Target(
                f"production engine p99 ≤ {TARGET_P99_FACTOR}x the floor handler's at {level} in flight",
                f"{p99:.1f} ms = {p99 / floor_p99:.1f}x {floor_p99:.1f} ms",
                p99 <= TARGET_P99_FACTOR * floor_p99,
            )
        ],
        notes=[
            f"{plan.calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), {plan.repetitions} run(s) per"
            f" row; the engine runs the pizza happy path ({len(SCRIPT)} messages) on distinct conversations.",
            "Floor handler per call: pydantic validate (MessageRequest), Redis GET + SET of a 2 KB context,"
            " PostgreSQL INSERT of a 2 KB JSONB row, pydantic validate + dump of the reply (MessageReply).",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

"""Three ``mcp-engine serve`` processes on one PostgreSQL schema and one Redis key prefix: any process serves
any conversation, and nothing is lost or applied twice, also when a process dies mid-turn (SIGKILL).

The flow's wait state adds 1 to ``variables.n`` on every message, so the counter a reply reports is the
turn's position in its conversation. Each conversation gets its 20 messages in bursts of ``BURST`` sent at
once (to random processes, so they race for the cross-process lock); afterwards the counters a client got
must be a permutation of 1..20, the stored counter 20, and the stored history must hold the 20 inbound
messages in exactly the order of those counters (the order the turns really ran in).

Clients retry UNAVAILABLE and connection errors with the same ``metadata.message_id`` on another random
process, a bounded number of times: a turn that committed before its process died answers the retry from
its idempotency record instead of counting again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.store.postgres import ProductionStore
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing
from tests.serve_kit import Served, serve
from tests.turnkit import TENANT, flow, on, set_action, wait

pytestmark = pytest.mark.slow

PROCESSES = 3
CONVERSATIONS = 30
MESSAGES = 20
BURST = 4
CALL_TIMEOUT_S = 20.0  # per RPC; far above a turn, so a client never gives up on a turn still running
RETRY_BUDGET_S = 30.0  # per message: covers a dead holder's lock lease (10 s) plus the lock wait
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED)


def counter_flow() -> dict[str, object]:
    return flow(
        "w",
        {"w": wait(on("any_input", "w", actions=[set_action("n", expression="variables.n + 1")]))},
        flow_id="counter",
        variables={"n": 0},
    )


@dataclass
class Cluster:
    """The served processes, one gRPC stub each, and which ones are alive."""

    name: str
    served: list[Served]
    stubs: list[mcp_pb2_grpc.MCPEngineStub] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)
    retries: int = 0
    answered: int = 0

    def pick(self) -> int:
        """A random process; a client does not know which ones died, so dead ones are picked too."""
        return random.randrange(len(self.served))


@pytest.fixture
async def backing() -> AsyncIterator[str]:
    """One schema and key prefix name for the whole cluster, removed afterwards."""
    async with fresh_backing("mp") as name:
        yield name


@pytest.fixture
async def cluster(tmp_path: Path, backing: str) -> AsyncIterator[Cluster]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "counter.json").write_text(json.dumps(counter_flow()))
    env = {
        "POSTGRES_URI": POSTGRES_URI,
        "REDIS_URL": REDIS_URL,
        "MCP_POSTGRES_SCHEMA": backing,
        "MCP_REDIS_PREFIX": backing,
        "MCP_AUTH": "off",
        "CONTEXT_LOCK_TIMEOUT_MS": "2000",
        "MCP_POSTGRES_POOL_SIZE": "5",
        "MCP_LOG_LEVEL": "WARNING",
    }
    with ExitStack() as stack:
        served = []
        for i in range(PROCESSES):
            folder = tmp_path / f"p{i}"
            folder.mkdir()
            served.append(stack.enter_context(serve(folder, "--flows", str(flows), env=env)))
        channels = [grpc.aio.insecure_channel(s.target) for s in served]
        try:
            yield Cluster(
                backing,
                served,
                [mcp_pb2_grpc.MCPEngineStub(c) for c in channels],
                [True] * PROCESSES,
            )
        finally:
            for channel in channels:
                await channel.close(None)


async def send(cluster: Cluster, conversation: str, text: str, message_id: str) -> int:
    """Send one message until some process answers it (bounded); the counter value of its turn."""
    request = mcp_pb2.ProcessMessageRequest(
        tenant_id=TENANT,
        conversation_id=conversation,
        user_id="u1",
        content=mcp_pb2.MessageContent(type="text", text=text),
        metadata={"message_id": message_id},
    )
    give_up = time.monotonic() + RETRY_BUDGET_S
    backoff = 0.05
    while True:
        try:
            reply = await cluster.stubs[cluster.pick()].ProcessMessage(request, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE or time.monotonic() > give_up:
                raise
            cluster.retries += 1
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 0.5)
            continue
        cluster.answered += 1
        return int(json.loads(reply.context_updates["variables.n"]))


async def converse(cluster: Cluster, conversation: str) -> dict[str, int]:
    """All messages of one conversation, in bursts sent at once; text -> counter value of its turn."""
    counters: dict[str, int] = {}
    for start in range(0, MESSAGES, BURST):
        texts = [f"m{i}" for i in range(start, min(start + BURST, MESSAGES))]
        values = await asyncio.gather(
            *(send(cluster, conversation, text, f"{conversation}-{text}") for text in texts)
        )
        counters.update(zip(texts, values, strict=True))
    return counters


async def check(cluster: Cluster, results: list[dict[str, int]]) -> None:
    """Exact counters and histories, read straight from the shared store."""
    store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=cluster.name, key_prefix=cluster.name)
    await store.open()
    try:
        for c, counters in enumerate(results):
            conversation = f"c{c}"
            assert sorted(counters.values()) == list(range(1, MESSAGES + 1)), (conversation, counters)
            stored = await store.load(TENANT, conversation)
            assert stored is not None
            assert stored.context["variables"]["n"] == MESSAGES
            history = await store.history(TENANT, conversation, limit=1000)
            inbound = [e["data"]["text"] for e in reversed(history) if e["type"] == "message_in"]
            assert inbound == sorted(counters, key=counters.__getitem__), conversation
    finally:
        await store.close()


async def run_all(cluster: Cluster) -> list[dict[str, int]]:
    return list(await asyncio.gather(*(converse(cluster, f"c{c}") for c in range(CONVERSATIONS))))


async def test_three_processes_count_every_message_exactly_once(cluster: Cluster) -> None:
    started = time.monotonic()
    results = await run_all(cluster)
    await check(cluster, results)
    assert cluster.answered == CONVERSATIONS * MESSAGES
    assert time.monotonic() - started < 40


async def test_a_process_killed_mid_run_loses_and_doubles_nothing(cluster: Cluster) -> None:
    async def kill_midway() -> None:
        deadline = time.monotonic() + 30
        while cluster.answered < CONVERSATIONS * MESSAGES // 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        victim = cluster.served[0].process
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        cluster.alive[0] = False

    started = time.monotonic()
    results, _ = await asyncio.gather(run_all(cluster), kill_midway())
    assert not cluster.alive[0]
    assert cluster.retries > 0  # the dead process was picked at least once after it died
    await check(cluster, results)
    assert time.monotonic() - started < 50

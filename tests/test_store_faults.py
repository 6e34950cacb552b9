"""The production store when its servers go away: Redis restarted mid-run, PostgreSQL unreachable, and a
timer that fell due while no engine process was running.

Redis is really restarted (``SHUTDOWN NOSAVE``, then started again; it runs without persistence, so every
key is gone): a private ``redis-server`` of the test on a free port, so the shared Redis that other suites
use is never touched and two suites may run at once. PostgreSQL is shared with everything else on this
machine, so it is never stopped: the store reaches it through a TCP proxy in this test, and "PostgreSQL
down" is the proxy closing its port and cutting every connection (what a stopped server looks like to a
client).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from mcp_engine.errors import EngineError, StoreUnavailable
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.services import EngineServices
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.store.postgres import ProductionStore
from tests.engine_fixtures import engine_settings
from tests.production_kit import POSTGRES_URI, REDIS_URL, delete_keys, fresh_backing
from tests.serve_kit import free_port
from tests.test_turn_runtime import timer_flow
from tests.turnkit import TENANT, flow, msg, on, set_action, wait

pytestmark = pytest.mark.slow
Engines = Callable[..., Any]
REDIS_ARGS = ("--save", "", "--appendonly", "no")  # as .ci/run starts it: no persistence


def counter_flow() -> dict[str, object]:
    return flow(
        "w",
        {"w": wait(on("any_input", "w", actions=[set_action("n", expression="variables.n + 1")]))},
        variables={"n": 0},
    )


@pytest.fixture
async def name() -> AsyncIterator[str]:
    """The schema and key prefix of the test, removed afterwards."""
    async with fresh_backing("f") as value:
        yield value


@pytest.fixture
async def engines(name: str) -> AsyncIterator[Callable[..., Any]]:
    """Open started engines on the test's schema (``postgres_uri`` may point at a proxy); all closed after."""
    opened: list[ExecutionService] = []

    async def open_engine(
        postgres_uri: str = POSTGRES_URI, redis_url: str = REDIS_URL, **settings: Any
    ) -> ExecutionService:
        store = ProductionStore(postgres_uri, redis_url, schema=name, key_prefix=name, lock_lease_s=2.0)
        engine = ExecutionService(
            store,
            settings=engine_settings(context_lock_timeout_ms=1000, **settings),
            services=EngineServices(env={}),
        )
        await engine.start()
        opened.append(engine)
        return engine

    yield open_engine
    for engine in opened:
        with contextlib.suppress(Exception):
            await engine.close()


async def counter(engine: ExecutionService, conversation: str) -> int:
    return int((await engine.get_state(TENANT, conversation))["variables"]["n"])


# --- Redis restarted ----------------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` of this test alone on a free 127.0.0.1 port, started as ``.ci/run`` starts the
    shared one (no persistence); it can be shut down and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
        )

    def start(self) -> None:
        """Start it and wait until it answers PING (bounded)."""
        subprocess.run(
            [
                *("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port)),
                *REDIS_ARGS,
            ],
            check=True,
            timeout=10,
        )
        deadline = time.monotonic() + 15
        while self.cli("PING").stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise AssertionError("Redis did not come back")
            time.sleep(0.05)

    def stop(self) -> None:
        self.cli("SHUTDOWN", "NOSAVE")


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def send_until_done(engine: ExecutionService, conversation: str, text: str, message_id: str) -> None:
    """What a client does: retry a retryable error with the same message_id (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            await engine.process_message(TENANT, conversation, msg(text, message_id=message_id))
            return
        except EngineError as exc:
            if exc.grpc_status != "UNAVAILABLE" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_redis_restart_mid_run_loses_no_conversation(
    engines: Engines, private_redis: PrivateRedis
) -> None:
    engine = await engines(redis_url=private_redis.url)
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    conversations = [f"c{i}" for i in range(5)]
    for c in conversations:
        for i in range(3):
            await send_until_done(engine, c, f"m{i}", f"{c}-m{i}")
    try:
        private_redis.stop()
        down_since = time.monotonic()
        with pytest.raises(StoreUnavailable) as refused:
            await engine.process_message(TENANT, "c0", msg("while down", message_id="c0-down"))
        assert refused.value.grpc_status == "UNAVAILABLE"
        assert time.monotonic() - down_since < 3
        assert not await engine.store.ready()
    finally:
        private_redis.start()
    started = time.monotonic()
    for c in conversations:  # every key is gone: contexts, idempotency records and locks come from PG
        for i in range(3, 6):
            await send_until_done(engine, c, f"m{i}", f"{c}-m{i}")
        await send_until_done(engine, c, "m0", f"{c}-m0")  # a replay is still answered from PostgreSQL
    assert time.monotonic() - started < 20
    assert await engine.store.ready()
    for c in conversations:
        assert await counter(engine, c) == 6
        history = await engine.store.history(TENANT, c, limit=1000)
        assert [e["data"]["text"] for e in reversed(history) if e["type"] == "message_in"] == [
            f"m{i}" for i in range(6)
        ]


# --- PostgreSQL unreachable ---------------------------------------------------------------------------


class Proxy:
    """A TCP proxy to PostgreSQL on a fixed 127.0.0.1 port that can be taken down (port closed, every
    connection cut) and brought back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 5432)
        self._writers |= {client_w, server_w}

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        self._writers -= {client_w, server_w}


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    found = Proxy()
    await found.up()
    yield found
    await found.down()


async def test_postgres_down_refuses_quickly_corrupts_nothing_and_recovers(
    engines: Engines, proxy: Proxy
) -> None:
    engine = await engines(proxy.uri)
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    for i in range(3):
        await engine.process_message(TENANT, "c1", msg(f"m{i}", message_id=f"m{i}"))
    await proxy.down()
    assert not await engine.store.ready()
    for i in range(3):  # with and without a message_id (the first one needs PostgreSQL before the lock)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as refused:
            await engine.process_message(TENANT, "c1", msg("lost", message_id=f"down{i}" if i else None))
        assert time.monotonic() - started < 2
        assert (refused.value.code, refused.value.http_status) == ("store_unavailable", 503)
    await proxy.up()
    deadline = time.monotonic() + 10
    while not await engine.store.ready():
        assert time.monotonic() < deadline, "the store did not recover"
        await asyncio.sleep(0.1)
    reply = await engine.process_message(TENANT, "c1", msg("m3", message_id="m3"))
    assert reply["context_updates"]["variables.n"] == 4  # nothing of the refused turns was written
    history = await engine.store.history(TENANT, "c1", limit=1000)
    assert [e["data"]["text"] for e in reversed(history) if e["type"] == "message_in"] == [
        "m0",
        "m1",
        "m2",
        "m3",
    ]


# --- a timer due while every process was down ---------------------------------------------------------


async def test_a_timer_due_while_every_process_was_down_fires_once_after_restart(
    engines: Engines, name: str
) -> None:
    first = await engines()
    await first.catalogue.publish_document(timer_flow(), make_default=True)
    await first.process_message(TENANT, "c1", msg("hi"))
    await first.close()  # every process down ...
    await delete_keys(name)  # ... and Redis restarted without persistence: the schedule is gone too
    stored = await asyncpg.connect(POSTGRES_URI, server_settings={"search_path": name})
    try:  # the timer fell due meanwhile (the flow's timeout is a minute)
        assert await stored.execute("UPDATE timers SET due_at = $1", time.time() - 1) == "UPDATE 1"
    finally:
        await stored.close()
    restarted = [await engines(), await engines()]
    fired = await asyncio.gather(*(fire_due_timers(engine) for engine in restarted))
    fired += await asyncio.gather(*(fire_due_timers(engine) for engine in restarted))
    assert [m["text"] for f in fired for t in f for m in t["messages"]] == ["Are you there?"]
    history = await restarted[1].store.history(TENANT, "c1", limit=1000)
    assert [e["type"] for e in history].count("timer_fired") == 1
    assert (await restarted[0].get_state(TENANT, "c1"))["current_state"] == "parked"

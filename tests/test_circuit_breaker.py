"""Circuit breakers per integration: the state machine on both breaker stores, a flow routing on
``circuit_open`` against a real server that fails, recovers and hangs, and one breaker seen open by two
engine processes on the production store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from mcp_engine.flow.models import CircuitBreaker
from mcp_engine.flow.validate import validate_data
from mcp_engine.metrics import Metrics
from mcp_engine.runtime.breaker import BreakerStore, LocalBreakerStore
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.redis_breaker import RedisBreakerStore
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import FakeIntegration, engine_settings
from tests.production_kit import POSTGRES_URI, REDIS_URL, delete_keys, fresh_backing
from tests.turnkit import TENANT, flow, go, msg, on, response, texts, wait

POLICY = CircuitBreaker(failure_threshold=2, window_ms=10_000, reset_timeout_ms=5_000, half_open_max_calls=1)
BREAKER = POLICY.model_dump()


@pytest.fixture(params=["local", "redis"])
async def breaker_store(request: pytest.FixtureRequest) -> AsyncIterator[BreakerStore]:
    if request.param == "local":
        yield LocalBreakerStore()
        return
    async with fresh_backing("brk") as prefix:
        client = Redis.from_url(REDIS_URL)
        try:
            yield RedisBreakerStore(client, prefix)
        finally:
            await client.aclose()
            await delete_keys(prefix)


async def test_failures_in_a_window_open_it_and_a_trial_closes_it(breaker_store: BreakerStore) -> None:
    store, key = breaker_store, "integration:t1:f:api"
    assert await store.acquire(key, POLICY, 0) == (True, "closed")
    assert await store.record(key, POLICY, False, 0) == "closed"
    assert await store.record(key, POLICY, True, 1) == "closed"  # a success does not forgive a failure
    assert await store.record(key, POLICY, False, 2) == "open"
    assert await store.acquire(key, POLICY, 4_999) == (False, "open")
    assert await store.acquire(key, POLICY, 5_002) == (True, "half_open")
    assert await store.acquire(key, POLICY, 5_003) == (False, "half_open")  # one trial at a time
    assert await store.record(key, POLICY, True, 5_010) == "closed"
    assert await store.acquire(key, POLICY, 5_011) == (True, "closed")


async def test_failures_further_apart_than_the_window_do_not_add_up(breaker_store: BreakerStore) -> None:
    store, key = breaker_store, "k"
    assert await store.record(key, POLICY, False, 0) == "closed"
    assert await store.record(key, POLICY, False, 10_000) == "closed"  # a new window
    assert await store.record(key, POLICY, False, 19_999) == "open"


async def test_a_failed_trial_opens_it_again_and_lost_trials_are_given_up(
    breaker_store: BreakerStore,
) -> None:
    store, key = breaker_store, "k"
    policy = POLICY.model_copy(update={"half_open_max_calls": 2})
    for now in (0, 1):
        await store.record(key, policy, False, now)
    assert await store.acquire(key, policy, 5_001) == (True, "half_open")
    assert await store.acquire(key, policy, 5_002) == (True, "half_open")
    assert await store.acquire(key, policy, 5_003) == (False, "half_open")
    assert await store.record(key, policy, False, 5_004) == "open"
    assert await store.acquire(key, policy, 9_000) == (False, "open")
    assert await store.acquire(key, policy, 10_004) == (True, "half_open")
    assert await store.acquire(key, policy, 10_005) == (True, "half_open")
    # neither trial reports back (their process died): after another reset timeout, new trials go
    assert await store.acquire(key, policy, 15_003) == (False, "half_open")
    assert await store.acquire(key, policy, 15_004) == (True, "half_open")


async def test_a_redis_that_does_not_answer_lets_calls_through() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    store = RedisBreakerStore(client, "nowhere")
    try:
        assert await store.acquire("k", POLICY, 0) == (True, "closed")
        assert await store.record("k", POLICY, False, 0) == "closed"
    finally:
        await client.aclose()


@dataclass
class Service:
    """A real server on 127.0.0.1 whose ``/balance`` fails (500), answers, or hangs, as ``mode`` says."""

    fake: FakeIntegration
    mode: str = "fail"
    hits: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.arrived.set()
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "fail":
            return web.Response(status=500)
        return web.json_response({"balance": 12})


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    async with FakeIntegration() as fake:
        found = Service(fake)
        fake.route("GET", "/balance", found.handle)
        yield found


def breaker_flow(url: str, *, route_circuit_open: bool = True) -> dict[str, Any]:
    failed = [on("integration_error", "fallback", "circuit_open")] if route_circuit_open else []
    return flow(
        "w",
        {
            "w": wait(on("any_input", "call")),
            "call": {
                "type": "integration",
                "config": {"integration_id": "api", "endpoint": "/balance"},
                "transitions": [
                    on("integration_success", "ok"),
                    *failed,
                    on("integration_error", "failed", "http_5xx"),
                    on("integration_error", "failed", "timeout"),
                ],
            },
            "ok": response("balance {{ integration_results.api.balance }}", go("w")),
            "failed": response("the service failed", go("w")),
            "fallback": response("the service is resting; try later", go("w")),
            "oops": response("something went wrong", go("w")),
        },
        integrations={
            "api": {
                "base_url": url,
                "timeout_ms": 300,
                "retry_policy": {"max_retries": 0},
                "circuit_breaker": BREAKER,
            }
        },
        global_handlers={"error_state": "oops"},
    )


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[ExecutionService, Clock]]:
    clock = Clock()
    engine = ExecutionService(
        SQLiteStore(str(tmp_path / "engine.db")),
        settings=engine_settings(),
        services=EngineServices(env={}, clock=clock),
        metrics=Metrics(),
    )
    await engine.start()
    yield engine, clock
    await engine.close()


def say(engine: ExecutionService, conversation: str = "c1") -> Callable[[], Any]:
    async def send() -> list[str]:
        return texts(await engine.process_message(TENANT, conversation, msg("go")))

    return send


def sample(engine: ExecutionService, name: str) -> float | None:
    assert engine.metrics is not None
    return engine.metrics.registry.get_sample_value(name, {"integration": "api"})


async def test_an_open_breaker_routes_to_the_fallback_until_the_service_recovers(
    engine: tuple[ExecutionService, Clock], service: Service
) -> None:
    engine_, clock = engine
    await engine_.catalogue.publish_document(breaker_flow(service.fake.url()), make_default=True)
    send = say(engine_)
    assert await send() == ["the service failed"]
    assert await send() == ["the service failed"]  # the second failure in the window opens it
    assert await send() == ["the service is resting; try later"]
    assert service.hits == 2  # the open breaker made no call
    assert sample(engine_, "mcp_circuit_breaker_state") == 2
    assert sample(engine_, "mcp_circuit_breaker_rejected_total") == 1
    service.mode = "ok"
    assert await send() == ["the service is resting; try later"]  # still within reset_timeout_ms
    clock.now += 5.0
    assert await send() == ["balance 12"]  # the half-open trial succeeds and closes it
    assert await send() == ["balance 12"]
    assert service.hits == 4
    assert sample(engine_, "mcp_circuit_breaker_state") == 0
    history = await engine_.store.history(TENANT, "c1", limit=500)
    errors = [e["data"]["error"] for e in history if e["type"] == "integration_call"]
    assert errors.count("circuit_open") == 2


async def test_hanging_calls_count_as_failures_and_trials_are_limited(
    engine: tuple[ExecutionService, Clock], service: Service
) -> None:
    engine_, clock = engine
    await engine_.catalogue.publish_document(breaker_flow(service.fake.url()), make_default=True)
    service.mode = "hang"
    assert await say(engine_, "a")() == ["the service failed"]  # a timeout
    assert await say(engine_, "a")() == ["the service failed"]
    assert await say(engine_, "b")() == ["the service is resting; try later"]
    clock.now += 5.0
    service.arrived.clear()
    trial = asyncio.create_task(say(engine_, "a")())
    await asyncio.wait_for(service.arrived.wait(), 10)  # the one trial is in flight, hanging
    assert await say(engine_, "b")() == ["the service is resting; try later"]
    assert await trial == ["the service failed"]  # it timed out: open again
    assert await say(engine_, "c")() == ["the service is resting; try later"]
    assert service.hits == 3


async def test_without_a_circuit_open_transition_the_error_handler_takes_it(
    engine: tuple[ExecutionService, Clock], service: Service
) -> None:
    engine_, _ = engine
    document = breaker_flow(service.fake.url(), route_circuit_open=False)
    await engine_.catalogue.publish_document(document, make_default=True)
    send = say(engine_)
    assert await send() == ["the service failed"]
    assert await send() == ["the service failed"]
    assert await send() == ["something went wrong"]
    assert service.hits == 2


def test_bad_breaker_settings_are_refused_with_where_and_why() -> None:
    document = breaker_flow("http://127.0.0.1:9")
    document["integrations"]["api"]["circuit_breaker"] = {"failure_threshold": 0, "window": 5}
    result = validate_data(document)
    problems = {error.pointer: error.message for error in result.errors}
    assert "/integrations/api/circuit_breaker/failure_threshold" in problems
    assert "/integrations/api/circuit_breaker/window" in problems


OPEN_IT = textwrap.dedent(
    """
    import asyncio, sys
    from mcp_engine.runtime.execution import ExecutionService, InboundMessage
    from mcp_engine.runtime.services import EngineServices
    from mcp_engine.store.postgres import ProductionStore
    from mcp_engine.testing import engine_settings

    async def main(postgres, redis, name):
        store = ProductionStore(postgres, redis, schema=name, key_prefix=name)
        engine = ExecutionService(store, settings=engine_settings(), services=EngineServices(env={}))
        await engine.start()
        try:
            for _ in range(2):
                message = InboundMessage(text="go", type="text", user_id="u1", channel="default")
                reply = await engine.process_message("t1", "other", message)
                print(reply["messages"][0]["text"])
        finally:
            await engine.close()

    asyncio.run(main(*sys.argv[1:]))
    """
)


@pytest.mark.slow
async def test_one_breaker_opened_by_one_engine_process_is_open_in_another(service: Service) -> None:
    async with fresh_backing("brk") as name:
        store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        engine = ExecutionService(store, settings=engine_settings(), services=EngineServices(env={}))
        await engine.start()
        try:
            await engine.catalogue.publish_document(breaker_flow(service.fake.url()), make_default=True)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                OPEN_IT,
                POSTGRES_URI,
                REDIS_URL,
                name,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            assert process.returncode == 0, err.decode()
            assert out.decode().splitlines() == ["the service failed", "the service failed"]
            assert service.hits == 2
            assert await say(engine)() == ["the service is resting; try later"]
            assert service.hits == 2  # this process made no call: the breaker the other opened is shared
        finally:
            await engine.close()

"""Metrics (SPEC §8): after a few turns ``/metrics`` has every metric, labelled by flow and state type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from mcp_engine.auth import Authenticator
from mcp_engine.metrics import Metrics
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.limits import Limiter
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import Conversation, engine_settings, example_flow

METRICS = {
    "mcp_turn_latency_seconds": "histogram",
    "mcp_state_execution_seconds": "histogram",
    "mcp_transition_evaluation_seconds": "histogram",
    "mcp_messages": "counter",
    "mcp_no_matches": "counter",
    "mcp_errors": "counter",
    "mcp_integration_calls": "counter",
    "mcp_integration_call_seconds": "histogram",
    "mcp_run_completions": "counter",
    "mcp_lock_wait_seconds": "histogram",
    "mcp_store_seconds": "histogram",
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    engine = ExecutionService(
        SQLiteStore(str(tmp_path / "m.db")),
        settings=engine_settings(),
        services=EngineServices(env={}),
        metrics=Metrics(),
    )
    await engine.start()
    await engine.catalogue.publish_document(example_flow("pizza"))
    try:
        yield engine
    finally:
        await engine.close()


async def pizza_turns(engine: ExecutionService) -> None:
    """A happy path to the end (a completion) and a miss (a no-match), on two conversations."""
    chat = Conversation(engine, "m-1", "pizza")
    for text in ("two large pizzas", "12 Main Street", "212-555-0198", "purple elephants", "yes"):
        await chat.say(text)
    await Conversation(engine, "m-2", "pizza").say("when are you open?")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] of a Prometheus text exposition."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in found.get(name, []) if all(got.get(k) == want for k, want in labels.items()))


async def test_metrics_after_a_few_turns(engine: ExecutionService) -> None:
    await pizza_turns(engine)
    assert engine.metrics is not None
    text = engine.metrics.render().decode()
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    for name, kind in METRICS.items():
        assert families.get(name) == kind, name
    found = samples(text)
    assert value(found, "mcp_turn_latency_seconds_count", flow="pizza") == 6
    assert value(found, "mcp_messages_total", flow="pizza", direction="in") == 6
    assert value(found, "mcp_messages_total", flow="pizza", direction="out") >= 6
    assert value(found, "mcp_no_matches_total", flow="pizza") == 1
    assert value(found, "mcp_run_completions_total", flow="pizza") == 1
    assert value(found, "mcp_lock_wait_seconds_count") == 6
    assert value(found, "mcp_store_seconds_count", operation="commit") == 6
    assert value(found, "mcp_store_seconds_count", operation="begin") == 6
    for state_type in ("response", "intent", "slot_filling", "end"):
        assert value(found, "mcp_state_execution_seconds_count", flow="pizza", state_type=state_type) > 0
    for state_type in ("response", "intent", "slot_filling"):  # an end state has no transitions
        assert (
            value(found, "mcp_transition_evaluation_seconds_count", flow="pizza", state_type=state_type) > 0
        )


async def test_request_errors_are_counted_by_code(engine: ExecutionService) -> None:
    chat = Conversation(engine, "m-err", "no-such-flow")
    with pytest.raises(Exception, match="no published version"):
        await chat.say("hello")
    assert engine.metrics is not None
    found = samples(engine.metrics.render().decode())
    assert value(found, "mcp_errors_total", kind="request", code="flow_not_found") == 1


def test_each_engine_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.flow("pizza").messages_in.inc()
    assert b'mcp_messages_total{direction="in",flow="pizza"} 1.0' in one.render()
    assert b"mcp_messages_total{" not in two.render()


async def test_get_metrics_over_rest(engine: ExecutionService) -> None:
    from mcp_engine.api.rest.app import create_app
    from mcp_engine.security.metrics_access import metrics_routes

    await pizza_turns(engine)
    assert engine.metrics is not None
    auth = Authenticator(engine.store, "off", None)
    app = create_app(
        engine, auth, Limiter(4), extra_routes=metrics_routes(engine.metrics.handle, engine.settings)
    )
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    found = samples(text)
    assert value(found, "mcp_turn_latency_seconds_count", flow="pizza") == 6
    assert value(found, "mcp_state_execution_seconds_count", flow="pizza", state_type="slot_filling") > 0

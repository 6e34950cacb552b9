"""End-to-end turns on the production store (PostgreSQL + Redis): the engine is store-agnostic, so a few
conversations that exercise every store path (context CAS, history, idempotency, locks) must behave
exactly as on SQLite. Fails loudly, like ``test_store_postgres.py``, when the servers are not running."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator

import pytest

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.postgres import ProductionStore
from tests.engine_fixtures import EXAMPLE_FLOWS, EXAMPLE_SECRETS, engine_settings, example_flow
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing
from tests.test_e2e_examples import order_two_large, pizza
from tests.turnkit import TENANT, flow, msg, on, set_action, wait


@pytest.fixture
async def engine() -> AsyncIterator[ExecutionService]:
    """An engine on its own schema and key prefix (both removed afterwards), the example flows published."""
    async with fresh_backing("t") as name:
        store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        settings = engine_settings(grant_secrets=EXAMPLE_SECRETS)
        engine = ExecutionService(store, settings=settings, services=EngineServices(env={}))
        await engine.start()
        try:
            for example in EXAMPLE_FLOWS:
                await engine.catalogue.publish_document(copy.deepcopy(example_flow(example)))
            yield engine
        finally:
            await engine.close()


async def test_pizza_happy_path(engine: ExecutionService) -> None:
    chat = pizza(engine)
    await order_two_large(chat)
    reply = (await chat.say("yes please")).data
    assert reply["current_state"] == "order_placed"
    context = await chat.state()
    assert context["slots"]["address"] == "12 Main Street"
    assert context["run"]["completed"] is True


def counter_flow() -> dict[str, object]:
    return flow(
        "w",
        {"w": wait(on("any_input", "w", actions=[set_action("n", expression="variables.n + 1")]))},
        variables={"n": 0},
    )


async def test_a_message_id_is_processed_once(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    first = await engine.process_message(TENANT, "c1", msg("a", message_id="m1"))
    again = await engine.process_message(TENANT, "c1", msg("a", message_id="m1"))
    assert first == again
    assert (await engine.get_state(TENANT, "c1"))["variables"]["n"] == 1


async def test_twenty_concurrent_messages_to_one_conversation_count_twenty(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(counter_flow(), make_default=True)
    replies = await asyncio.gather(*(engine.process_message(TENANT, "c1", msg(f"m{i}")) for i in range(20)))
    assert len(replies) == 20
    assert (await engine.get_state(TENANT, "c1"))["variables"]["n"] == 20
    events = await engine.store.history(TENANT, "c1", limit=1000)
    inbound = sorted(e["data"]["text"] for e in events if e["type"] == "message_in")
    assert inbound == sorted(f"m{i}" for i in range(20))

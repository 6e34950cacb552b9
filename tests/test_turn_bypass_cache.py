"""The ``bypass_cache`` hint on both stores: the turn reads the conversation and its flow version from the
durable store, so it sees a change made behind the engine's caches (the production store's Redis copy of
the context; this process's compiled flow, after another process deleted and created the version again).
And ``ENABLE_FLOW_VERSIONING`` off: a publish moves every conversation to the new version."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from mcp_engine.config import EngineSettings
from mcp_engine.runtime.execution import ExecutionService, Hints
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import start_engine
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing
from tests.turnkit import TENANT, flow, go, msg, on, response, set_action, texts, wait

BYPASS = Hints(bypass_cache=True)
# Sets variables.n in the durable copy only (the production store's Redis copy keeps the old context).
Behind = Callable[[str, int], Awaitable[None]]


def counter(text: str) -> dict[str, object]:
    """Each message adds one to ``n`` and says ``text`` with it."""
    return flow(
        "w",
        {
            "w": wait(on("any_input", "say", actions=[set_action("n", expression="variables.n + 1")])),
            "say": response(text + " {{ variables.n }}", go("w")),
        },
        variables={"n": 0},
    )


@pytest.fixture(params=["sqlite", "production"])
async def engines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ExecutionService, ExecutionService, Behind]]:
    """Two engines on one store (two processes), and a way to change a context behind the caches."""
    if request.param == "sqlite":
        path = tmp_path / "bypass.db"

        async def behind_sqlite(conversation: str, n: int) -> None:
            with sqlite3.connect(path) as db:
                (raw,) = db.execute(
                    "SELECT context FROM conversations WHERE conversation_id = ?", (conversation,)
                ).fetchone()
                context = json.loads(raw)
                context["variables"]["n"] = n
                db.execute(
                    "UPDATE conversations SET context = ?, version = version + 1 WHERE conversation_id = ?",
                    (json.dumps(context).encode(), conversation),
                )

        one = await start_engine(SQLiteStore(str(path)))
        two = await start_engine(SQLiteStore(str(path)))
        try:
            yield one, two, behind_sqlite
        finally:
            await one.close()
            await two.close()
        return
    async with fresh_backing("bypass") as name:

        async def behind_postgres(conversation: str, n: int) -> None:
            connection = await asyncpg.connect(POSTGRES_URI)
            try:
                await connection.execute(
                    f"UPDATE {name}.conversations SET version = version + 1,"
                    " context = jsonb_set(context, '{variables,n}', $2::jsonb) WHERE conversation_id = $1",
                    conversation,
                    json.dumps(n),
                )
            finally:
                await connection.close()

        one = await start_engine(ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name))
        two = await start_engine(ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name))
        try:
            yield one, two, behind_postgres
        finally:
            await one.close()
            await two.close()


async def say(engine: ExecutionService, hints: Hints | None = None) -> str:
    return texts(await engine.process_message(TENANT, "c1", msg("hi"), hints))[-1]


async def test_bypass_cache_reads_the_context_from_the_durable_store(
    engines: tuple[ExecutionService, ExecutionService, Behind],
) -> None:
    one, _, behind = engines
    await one.catalogue.publish_document(counter("n is"), make_default=True)
    assert await say(one) == "n is 1"
    await behind("c1", 40)
    if isinstance(one.store, ProductionStore):  # Redis still holds the old context
        assert (await one.get_state(TENANT, "c1"))["variables"]["n"] == 1
    assert await say(one, BYPASS) == "n is 41"
    assert await say(one) == "n is 42"  # what the bypassing turn wrote is the conversation now


async def recreated_behind(one: ExecutionService, two: ExecutionService) -> None:
    """A conversation on ``one`` (which compiles version 1.0.0), then another process deletes the flow and
    creates the same version with other content."""
    await one.catalogue.publish_document(counter("old"), make_default=True)
    assert await say(one) == "old 1"
    await two.catalogue.delete(TENANT, "f")
    await two.catalogue.publish_document(counter("new"), make_default=True)


async def test_bypass_cache_reads_the_flow_version_from_the_store(
    engines: tuple[ExecutionService, ExecutionService, Behind],
) -> None:
    one, two, _ = engines
    await recreated_behind(one, two)
    assert await say(one) == "old 2"  # this process's compiled version
    assert await say(one, BYPASS) == "new 3"
    assert await say(one) == "new 4"  # the bypass replaced the stale compiled version
    assert await say(one, BYPASS) == "new 5"  # unchanged in the store: the compiled one is kept


async def test_bypass_cache_on_a_new_run_reads_the_published_version(
    engines: tuple[ExecutionService, ExecutionService, Behind],
) -> None:
    one, two, _ = engines
    await recreated_behind(one, two)
    reply = await one.process_message(TENANT, "c2", msg("hi"), BYPASS)
    assert texts(reply)[-1] == "new 1"


async def test_flow_versioning_off_moves_conversations_to_the_published_version(tmp_path: Path) -> None:
    settings = EngineSettings.model_validate({"ENABLE_FLOW_VERSIONING": False})
    engine = await start_engine(SQLiteStore(str(tmp_path / "v.db")), settings=settings)
    try:
        await engine.catalogue.publish_document(counter("one"), make_default=True)
        assert await say(engine) == "one 1"
        await engine.catalogue.publish_document({**counter("two"), "version": "1.1.0"})
        reply = await engine.process_message(TENANT, "c1", msg("hi"))
        assert (texts(reply)[-1], reply["flow_version"]) == ("two 2", "1.1.0")
        await engine.catalogue.publish(TENANT, "f", "1.0.0")  # a rollback moves it back
        reply = await engine.process_message(TENANT, "c1", msg("hi"))
        assert (texts(reply)[-1], reply["flow_version"]) == ("one 3", "1.0.0")
    finally:
        await engine.close()


async def test_flow_versioning_on_keeps_the_version_a_run_started_with(tmp_path: Path) -> None:
    engine = await start_engine(SQLiteStore(str(tmp_path / "v.db")))
    try:
        await engine.catalogue.publish_document(counter("one"), make_default=True)
        assert await say(engine) == "one 1"
        await engine.catalogue.publish_document({**counter("two"), "version": "1.1.0"})
        assert await say(engine) == "one 2"
        assert texts(await engine.process_message(TENANT, "c9", msg("hi")))[-1] == "two 1"
    finally:
        await engine.close()

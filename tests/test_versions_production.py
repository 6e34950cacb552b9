"""Flow versions on the production store, through ``ExecutionService``: a conversation keeps the version it
started on until its run ends, new runs take whatever is published then, and a rollback is publishing the
old version again. Fails loudly, like ``test_store_postgres.py``, when the servers are not running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.postgres import ProductionStore
from tests.engine_fixtures import engine_settings
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing
from tests.turnkit import TENANT, end, flow, go, msg, on, response, texts, wait


def versioned(version: str, word: str) -> dict[str, Any]:
    return flow(
        "start",
        {
            "start": wait(on("any_input", "hello")),
            "hello": response(f"hello {word}", go("w")),
            "w": wait(on("any_input", "done")),
            "done": end(f"bye {word}"),
        },
        version=version,
    )


@pytest.fixture
async def engine() -> AsyncIterator[ExecutionService]:
    async with fresh_backing("v") as name:
        store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        engine = ExecutionService(store, settings=engine_settings(), services=EngineServices(env={}))
        await engine.start()
        try:
            yield engine
        finally:
            await engine.close()


async def say(engine: ExecutionService, conversation: str, text: str) -> tuple[list[str], str]:
    reply = await engine.process_message(TENANT, conversation, msg(text))
    return texts(reply), reply["flow_version"]


async def test_old_runs_finish_on_their_version_new_runs_take_the_published_one(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.publish_document(versioned("1.0.0", "one"), make_default=True)
    for c in ("old1", "old2"):
        assert await say(engine, c, "hi") == (["hello one"], "1.0.0")

    await engine.catalogue.publish_document(versioned("1.1.0", "two"), make_default=True)
    published = await engine.store.published(TENANT, "f")
    assert published is not None
    assert published.version == "1.1.0"
    for c in ("old1", "old2"):  # pinned: they end on the version they started on
        assert await say(engine, c, "done") == (["bye one"], "1.0.0")
    assert await say(engine, "new", "hi") == (["hello two"], "1.1.0")
    assert await say(engine, "old1", "again") == (["hello two"], "1.1.0")  # a new run: the new version

    # rollback: 1.0.0 is stored unchanged (immutable) and published again, for new runs only
    await engine.catalogue.publish_document(versioned("1.0.0", "one"), make_default=True)
    assert await say(engine, "new", "done") == (["bye two"], "1.1.0")
    assert await say(engine, "after", "hi") == (["hello one"], "1.0.0")
    versions = await engine.store.list_versions(TENANT, "f")
    assert [(v.version, v.status) for v in versions] == [("1.0.0", "published"), ("1.1.0", "draft")]


async def test_a_published_version_cannot_be_changed(engine: ExecutionService) -> None:
    await engine.catalogue.publish_document(versioned("1.0.0", "one"), make_default=True)
    with pytest.raises(Exception, match="already stored with other content"):
        await engine.catalogue.publish_document(versioned("1.0.0", "changed"), make_default=True)
    assert await say(engine, "c1", "hi") == (["hello one"], "1.0.0")

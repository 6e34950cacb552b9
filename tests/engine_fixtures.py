"""An engine on a temporary SQLite file with the example flows published, for end-to-end tests.

``example_flow(name)`` gives a fresh copy of an example document (to change before publishing);
``open_engine`` publishes every example flow (or the given documents) for tenant "demo", none of them
the tenant's default; ``rest_client`` serves an engine's REST app to aiohttp's test client;
``Conversation`` sends messages and keeps the replies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from mcp_engine.api.rest.app import create_app
from mcp_engine.auth import Authenticator, AuthMode
from mcp_engine.config import EngineSettings
from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.runtime.limits import Limiter
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.sqlite import SQLiteStore

TENANT = "demo"
FLOWS_DIR = Path(__file__).parent.parent / "examples" / "flows"
EXAMPLE_FLOWS = ("pizza", "bank", "support", "collect_contact")


@cache
def _example(name: str) -> str:
    return (FLOWS_DIR / f"{name}.json").read_text(encoding="utf-8")


def example_flow(name: str) -> dict[str, Any]:
    """A fresh copy of ``examples/flows/<name>.json`` (safe to change)."""
    document: dict[str, Any] = json.loads(_example(name))
    return document


def engine_settings(**values: Any) -> EngineSettings:
    """Settings by field name (``state_execution_timeout_ms=2000``), not read from the environment's
    aliases so a developer's shell cannot change a test."""
    fields = EngineSettings.model_fields
    return EngineSettings.model_validate(
        {fields[name].alias or name: value for name, value in values.items()}
    )


@asynccontextmanager
async def open_engine(
    db_path: Path,
    documents: Mapping[str, dict[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
    settings: EngineSettings | None = None,
    publish: bool = True,
) -> AsyncIterator[ExecutionService]:
    """An started engine on ``db_path``; every example flow is published unless ``publish`` is False.

    ``documents`` replaces example flows by name (e.g. a bank flow pointing at a test server).
    """
    engine = ExecutionService(
        SQLiteStore(str(db_path)),
        settings=settings or engine_settings(),
        services=EngineServices(env=env or {}),
    )
    await engine.start()
    try:
        if publish:
            for name in EXAMPLE_FLOWS:
                document = (documents or {}).get(name) or example_flow(name)
                await engine.catalogue.publish_document(copy.deepcopy(document))
        yield engine
    finally:
        await engine.close()


@asynccontextmanager
async def rest_client(
    engine: ExecutionService,
    mode: AuthMode = "off",
    limiter: Limiter | None = None,
    admin_key: str | None = None,
    **options: Any,
) -> AsyncIterator[TestClient[Any, Any]]:
    """The real REST app over ``engine`` with the real ``Authenticator`` in ``mode``, on 127.0.0.1."""
    app = create_app(engine, Authenticator(engine.store, mode, admin_key), limiter or Limiter(8), **options)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def texts(reply: Mapping[str, Any]) -> list[str]:
    """The texts of a reply's (or a fired timer's) messages, in order."""
    return [message["text"] for message in reply["messages"]]


@dataclass
class Conversation:
    """One conversation of tenant "demo" on ``flow``: the first message names the flow, the rest
    follow the conversation (SPEC §7: the flow the conversation is on)."""

    engine: ExecutionService
    conversation_id: str
    flow: str
    channel: str = "default"
    user_id: str = "user-1"
    replies: list[dict[str, Any]] = field(default_factory=list)

    async def say(self, text: str, message_id: str | None = None, kind: str = "text") -> dict[str, Any]:
        metadata = {"message_id": message_id} if message_id else {}
        message = InboundMessage(
            text=text, type=kind, user_id=self.user_id, channel=self.channel, metadata=metadata
        )
        hints = Hints(force_flow=self.flow) if not self.replies else None
        reply = await self.engine.process_message(TENANT, self.conversation_id, message, hints)
        self.replies.append(reply)
        return reply

    async def state(self) -> dict[str, Any]:
        return await self.engine.get_state(TENANT, self.conversation_id)

    async def history(self, limit: int = 500) -> list[dict[str, Any]]:
        """The conversation's history, oldest first."""
        events = await self.engine.store.history(TENANT, self.conversation_id, limit=limit)
        return list(reversed(events))

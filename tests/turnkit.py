"""Small builders for the turn tests (``test_turn_*.py``): inline flows of tenant "t1", an engine on a
SQLite file and a fake integration server on 127.0.0.1 (both the test kit's, ``mcp_engine.testing``),
messages."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from mcp_engine.config import EngineSettings
from mcp_engine.registry import Registry
from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import FakeIntegration, granted_environment, start_engine

TENANT = "t1"
State = dict[str, Any]
Transition = dict[str, Any]


def flow(
    initial: str, states: dict[str, State], *, flow_id: str = "f", version: str = "1.0.0", **extra: Any
) -> dict[str, Any]:
    """A flow document of tenant ``t1``; ``extra`` adds top-level fields (intents, global_handlers...)."""
    return {
        "flow_id": flow_id,
        "tenant_id": TENANT,
        "name": flow_id.title(),
        "version": version,
        "initial_state": initial,
        "states": states,
        **extra,
    }


def go(target: str, expression: str = "true", **extra: Any) -> Transition:
    """An ``expression`` transition (automatic); ``extra``: priority, actions."""
    return {"condition": "expression", "expression": expression, "target_state": target, **extra}


def on(condition: str, target: str, value: str | None = None, **extra: Any) -> Transition:
    transition: Transition = {"condition": condition, "target_state": target, **extra}
    if value is not None:
        transition["condition_value"] = value
    return transition


def response(text: str | dict[str, str], *transitions: Transition, **extra: Any) -> State:
    """A ``response`` state; ``text`` is the default template or the templates by channel.
    ``extra``: config fields (delay_ms...) and state fields (entry_actions, exit_actions)."""
    templates = {"default": text} if isinstance(text, str) else text
    state_fields = {k: extra.pop(k) for k in ("entry_actions", "exit_actions") if k in extra}
    return {
        "type": "response",
        "config": {"response_templates": templates, **extra},
        "transitions": list(transitions),
        **state_fields,
    }


def wait(*transitions: Transition, **state_fields: Any) -> State:
    config = {"timeout_ms": state_fields.pop("timeout_ms")} if "timeout_ms" in state_fields else {}
    return {"type": "wait", "config": config, "transitions": list(transitions), **state_fields}


def condition(*transitions: Transition, **state_fields: Any) -> State:
    return {"type": "condition", "config": {}, "transitions": list(transitions), **state_fields}


def end(text: str | None = None, **state_fields: Any) -> State:
    config = {"response_templates": {"default": text}} if text is not None else {}
    return {"type": "end", "config": config, "transitions": [], **state_fields}


def say_action(text: str) -> dict[str, Any]:
    return {"type": "send_message", "text": text}


def set_action(name: str, value: Any = None, expression: str | None = None) -> dict[str, Any]:
    if expression is not None:
        return {"type": "set_variable", "name": name, "expression": expression}
    return {"type": "set_variable", "name": name, "value": value}


def msg(
    text: str, channel: str = "default", message_id: str | None = None, type: str = "text"
) -> InboundMessage:
    metadata = {"message_id": message_id} if message_id else {}
    return InboundMessage(text=text, type=type, user_id="u1", channel=channel, metadata=metadata)


def texts(reply: dict[str, Any]) -> list[str]:
    return [m["text"] for m in reply["messages"]]


async def open_engine(path: Path, registry: Registry | None = None, **settings: Any) -> ExecutionService:
    """A started engine on ``path`` (a SQLite file); ``settings`` are EngineSettings fields (by alias)."""
    return await start_engine(
        SQLiteStore(str(path)),
        registry,
        EngineSettings.model_validate({**granted_environment(), **settings}) if settings else None,
    )


async def talk(
    engine: ExecutionService, conversation: str, *messages: str, hints: Hints | None = None
) -> list[dict[str, Any]]:
    """Send ``messages`` in order to one conversation; the replies."""
    return [await engine.process_message(TENANT, conversation, msg(text), hints) for text in messages]


async def history_types(engine: ExecutionService, conversation: str) -> list[str]:
    """Event types of the conversation's history, oldest first."""
    events = await engine.store.history(TENANT, conversation, limit=1000)
    return [e["type"] for e in reversed(events)]


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(*routes: web.RouteDef) -> AsyncIterator[str]:
    """Serve ``routes`` (``web.get("/slow", handler)``) on 127.0.0.1; yields the base URL."""
    async with FakeIntegration(routes) as fake:
        yield fake.url()

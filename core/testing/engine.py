"""A test engine and a conversation driver: what the fixtures of ``mcp_engine.testing`` are made of.

An engine in a test runs on an embedded (SQLite) store, with settings no developer's shell can change and
the plugins the test names; flows go in through the engine's catalogue, exactly as uploaded over REST, so
a flow a tenant could not publish fails here too.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_engine.config import EngineSettings
from mcp_engine.flow.loader import Source, read_file
from mcp_engine.plugin_manager import create_plugin_manager
from mcp_engine.registry import Registry, default_registry
from mcp_engine.runtime.execution import ExecutionService, Hints, InboundMessage
from mcp_engine.runtime.services import EngineServices
from mcp_engine.store.base import Store

FlowSource = Mapping[str, Any] | Path | str
LOOPBACK_GRANT = "*:127.0.0.1,::1"


def engine_settings(**values: Any) -> EngineSettings:
    """Settings by field name (``state_execution_timeout_ms=2000``), never read from the environment, so a
    developer's shell cannot change a test. Every test engine is made with these: this is the one place a
    test engine is given what an operator grants a development engine: every tenant may call loopback
    (``LOOPBACK_GRANT``: test services run on 127.0.0.1; the engine's own ports stay refused) unless the
    test sets ``grant_outbound`` itself."""
    values.setdefault("grant_outbound", LOOPBACK_GRANT)
    fields = EngineSettings.model_fields
    return EngineSettings.model_validate(
        {fields[name].alias or name: value for name, value in values.items()}
    )


def granted_environment(secrets: Sequence[str] = ()) -> dict[str, str]:
    """The same grants as ``engine_settings`` (and ``secrets`` for every tenant) as environment variables,
    for an engine a test starts in another process (``mcp-engine serve``)."""
    grants = {"MCP_GRANT_OUTBOUND": LOOPBACK_GRANT}
    if secrets:
        grants["MCP_GRANT_SECRETS"] = "*:" + ",".join(secrets)
    return grants


def plugin_registry(plugins: Sequence[str] | None = None) -> Registry:
    """The built-ins and the installed plugins named (entry-point names); None: every installed plugin
    that ``MCP_ENGINE_LOAD_PLUGINS`` allows, as ``mcp-engine serve`` would load them."""
    if plugins is None:
        return default_registry()
    return Registry.from_plugin_manager(create_plugin_manager(allow=plugins))


async def start_engine(
    store: Store,
    registry: Registry | None = None,
    settings: EngineSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> ExecutionService:
    """A started engine on ``store``; ``env`` is the environment its plugins see, every name of it granted
    to every tenant as a secret (``${env:NAME}``) unless ``settings`` grant secrets themselves.
    Close it with ``await engine.close()`` (which closes the store)."""
    services = EngineServices(env=dict(env or {}))
    settings = settings or engine_settings()
    if env and settings.grant_secrets is None:
        settings = settings.model_copy(update={"grant_secrets": "*:" + ",".join(env)})
    engine = ExecutionService(store, registry, settings, services)
    await engine.start()
    return engine


def flow_document(path: Path | str) -> dict[str, Any]:
    """A flow document read from a JSON or YAML file, to change before publishing."""
    source = _read(path)
    if not isinstance(source.data, dict):
        raise ValueError(f"{path}: a flow document is an object")
    return source.data


@dataclass(frozen=True)
class Reply:
    """One turn: what was ``said``, the ``texts`` the engine answered, the ``state`` the conversation is in
    now, and the engine's whole reply (``data``: messages, context_updates, confidence_scores, ...)."""

    said: str
    texts: list[str]
    state: str
    data: dict[str, Any]

    @classmethod
    def of(cls, said: str, data: dict[str, Any]) -> Reply:
        return cls(said, [message["text"] for message in data["messages"]], data["current_state"], data)


@dataclass
class Conversation:
    """One conversation of ``tenant_id``; the first message starts a run of ``flow_id`` (when given)."""

    engine: ExecutionService
    tenant_id: str
    flow_id: str | None = None
    conversation_id: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:12]}")
    channel: str = "default"
    user_id: str = "user-1"
    replies: list[Reply] = field(default_factory=list)

    async def say(self, text: str, *, type: str = "text", message_id: str | None = None) -> Reply:
        """One turn; ``type="event"`` delivers an event (``say("timeout", type="event")``)."""
        metadata = {"message_id": message_id} if message_id else {}
        message = InboundMessage(
            text=text, type=type, user_id=self.user_id, channel=self.channel, metadata=metadata
        )
        hints = Hints(force_flow=self.flow_id) if self.flow_id and not self.replies else None
        data = await self.engine.process_message(self.tenant_id, self.conversation_id, message, hints)
        reply = Reply.of(text, data)
        self.replies.append(reply)
        return reply

    async def context(self) -> dict[str, Any]:
        """The conversation's stored context: slots, variables, current_state, ..."""
        return await self.engine.get_state(self.tenant_id, self.conversation_id)

    async def history(self, limit: int = 500) -> list[dict[str, Any]]:
        """The conversation's history events, oldest first."""
        events = await self.engine.store.history(self.tenant_id, self.conversation_id, limit=limit)
        return list(reversed(events))


class Converse:
    """``await converse(flow, ["hi", "tea"])``: publish ``flow`` (a document, or a JSON/YAML file) for the
    tenant it names, start a new conversation on it, say each message in turn and return the replies,
    once the event sinks have had the turns' events. ``await converse.open(flow)`` gives the
    ``Conversation`` to go on turn by turn."""

    def __init__(self, engine: ExecutionService) -> None:
        self.engine = engine

    async def __call__(
        self, flow: FlowSource, messages: Sequence[str], *, channel: str = "default"
    ) -> list[Reply]:
        conversation = await self.open(flow, channel=channel)
        for text in messages:
            await conversation.say(text)
        await self.engine.sinks.drain()
        return conversation.replies

    async def open(self, flow: FlowSource, *, channel: str = "default") -> Conversation:
        """Publish ``flow`` (validated in its tenant's view: an invalid one raises ``FlowValidationError``
        listing every problem) and a new conversation on it."""
        source = Source(copy.deepcopy(dict(flow))) if isinstance(flow, Mapping) else _read(flow)
        published = await self.engine.catalogue.publish_document(source.data, source=source)
        return Conversation(self.engine, published.tenant_id, published.flow_id, channel=channel)


def _read(path: Path | str) -> Source:
    source, problem = read_file(path)
    if source is None:
        raise ValueError(problem.render(str(path)) if problem else f"{path}: cannot be read")
    return source

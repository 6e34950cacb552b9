"""A throwaway engine per case (or replayed conversation), and one conversation driven through it.

Each engine is an embedded one on a SQLite file in a temporary folder, with the flow under test
published as its tenant's default and the tenant's other flows stored and published beside it (sub-flows;
compiled only if a case enters them). Integrations are answered by fakes (``fakes.py``), no event sink
runs (the history keeps the events), the environment is empty, and the clock is the case's. Turns go
through ``ExecutionService``'s public methods only: ``process_message``, ``timers.fire_due_timers``,
``get_state``, and the store's ``history`` and ``due_timers``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from mcp_engine.config import EngineSettings
from mcp_engine.errors import EngineError
from mcp_engine.flow.models import Flow
from mcp_engine.flowtest.fakes import FakeBook, fake_registry
from mcp_engine.flowtest.history import InputKind, read_history
from mcp_engine.registry import Registry
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.runtime.services import EngineServices
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.security.local import developer_settings
from mcp_engine.store.sqlite import SQLiteStore

FAR_FUTURE = 1e15  # epoch seconds: every armed timer is due by then


@dataclass
class FlowSet:
    """The flow under test (a document) and the other flows of its tenant it may trigger."""

    main: dict[str, Any]
    others: list[dict[str, Any]]
    models: list[Flow]  # every flow of the set, validated (coverage, fakes)

    @property
    def tenant_id(self) -> str:
        return str(self.main["tenant_id"])

    @property
    def flow_id(self) -> str:
        return str(self.main["flow_id"])

    def fake_book(self) -> FakeBook:
        """A book of fakes for the integrations the set's flows declare (none in force yet)."""
        return FakeBook.of(flow.integrations for flow in self.models)


class SetupFailed(Exception):
    """The flows could not be published on a throwaway engine: no case of them can run."""


class Clock:
    """The engine's clock: fixed (a case's ``clock``, moved on only by an elapsed timeout) or real time."""

    def __init__(self, fixed: float | None = None) -> None:
        self.fixed = fixed

    def __call__(self) -> float:
        return time.time() if self.fixed is None else self.fixed

    def advance_to(self, moment: float) -> None:
        if self.fixed is not None:
            self.fixed = max(self.fixed, moment)


def engine_settings(base: EngineSettings) -> EngineSettings:
    """``base`` (its rules backend, limits, timeouts) without event sinks: a test's events stay in its
    throwaway history, never in the operator's Redis stream or analytics."""
    return base.model_copy(update={"event_sinks": ""})


@asynccontextmanager
async def throwaway_engine(
    flows: FlowSet, registry: Registry, settings: EngineSettings, book: FakeBook, clock: Clock
) -> AsyncIterator[ExecutionService]:
    with tempfile.TemporaryDirectory(prefix="mcp-flowtest-") as scratch:
        engine = ExecutionService(
            SQLiteStore(f"{scratch}/engine.db"),
            registry=fake_registry(registry, book),
            settings=developer_settings(engine_settings(settings), [flows.main, *flows.others]),
            services=EngineServices(env={}, clock=clock),
        )
        await engine.start()
        try:
            try:
                for document in flows.others:
                    await engine.store.save_flow_version(flows.tenant_id, document)
                    await engine.store.publish(flows.tenant_id, document["flow_id"], document["version"])
                await engine.catalogue.publish_document(flows.main, make_default=True)
            except (EngineError, ValueError) as exc:  # compiling checks what validation cannot (a client's)
                message = exc.message if isinstance(exc, EngineError) else str(exc)
                raise SetupFailed(f"flow '{flows.flow_id}' cannot be published: {message}") from exc
            yield engine
        finally:
            await engine.close()


@dataclass
class Done:
    """What one turn did, as a test or a replay compares it. ``refused``: why the turn did not run (the
    engine refused it, or no timeout was armed to elapse)."""

    messages: list[dict[str, Any]]
    state: str | None
    flow_id: str | None
    intent: str | None
    slots: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None


@dataclass
class Conversation:
    """One conversation on a throwaway engine, sent one input at a time."""

    engine: ExecutionService
    tenant_id: str
    conversation_id: str
    clock: Clock
    channel: str = "default"
    user_id: str = "flow-test"

    async def send(self, kind: InputKind, text: str = "") -> Done:
        """Send a user message or a client event, or let the waiting state's timeout elapse."""
        try:
            if kind == "timeout":
                return await self._elapse()
            message = InboundMessage(
                text=text,
                type="event" if kind == "event" else "text",
                user_id=self.user_id,
                channel=self.channel,
            )
            reply = await self.engine.process_message(self.tenant_id, self.conversation_id, message)
        except EngineError as exc:
            return await self._after([], None, f"the engine refused it: {exc.code}: {exc.message}")
        except Exception as exc:  # a plugin's bug: the case fails with it, the run goes on
            return await self._after([], None, f"the engine failed: {type(exc).__name__}: {exc}")
        return await self._after(reply["messages"], reply["confidence_scores"])

    async def _elapse(self) -> Done:
        due = [
            t
            for t in await self.engine.store.due_timers(FAR_FUTURE)
            if (t.tenant_id, t.conversation_id) == (self.tenant_id, self.conversation_id)
        ]
        if not due:
            done = await self._after([], None)
            done.refused = f"no timeout is armed in state '{done.state}'"
            return done
        self.clock.advance_to(due[0].due_at)
        messages = [
            message
            for fired in await fire_due_timers(self.engine, now=due[0].due_at)
            if fired["conversation_id"] == self.conversation_id
            for message in fired["messages"]
        ]
        return await self._after(messages, None)

    async def _after(
        self, messages: list[dict[str, Any]], scores: dict[str, float] | None, refused: str | None = None
    ) -> Done:
        try:
            context = await self.engine.get_state(self.tenant_id, self.conversation_id)
        except EngineError:  # refused before the conversation existed
            return Done(messages, None, None, None, refused=refused)
        intent = (context.get("intent") or {}).get("name") if scores else None
        return Done(
            messages,
            context.get("current_state"),
            context.get("flow_id"),
            intent,
            dict(context.get("slots") or {}),
            dict(context.get("variables") or {}),
            refused,
        )

    async def history(self) -> list[dict[str, Any]]:
        return await read_history(self.engine.store, self.tenant_id, self.conversation_id)

"""``ExecutionService``: one conversation turn end to end (ARCHITECTURE.md, "The turn").

begin (idempotency check, conversation lock, load the context: ``Store.begin_turn``, one round trip on the
production store) -> resolve the compiled flow -> ``Turn`` -> save context + events + idempotency record +
timer atomically (compare-and-set), releasing the lock with it -> hand events to the sinks without
waiting -> reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from mcp_engine.config import EngineSettings
from mcp_engine.errors import (
    ContextTooLarge,
    ConversationNotFound,
    DeadlineExceeded,
    EngineError,
    InvalidInput,
    PayloadTooLarge,
)
from mcp_engine.experiments.allocation import EXPOSURE, Assignment, mark_turn
from mcp_engine.experiments.merge_patch import merge_patch
from mcp_engine.experiments.service import ExperimentService
from mcp_engine.flow.limits import limits_of
from mcp_engine.registry import Registry, default_registry
from mcp_engine.rulesets import get_backend
from mcp_engine.runtime.catalogue import FlowCatalogue
from mcp_engine.runtime.compiled import CompiledFlow
from mcp_engine.runtime.context import flat_updates, new_context, run_flow, start_run
from mcp_engine.runtime.lookups import StampedLookups
from mcp_engine.runtime.outbound import Outbound
from mcp_engine.runtime.services import EngineServices
from mcp_engine.runtime.sinks import SinkFanout
from mcp_engine.runtime.turn import Turn
from mcp_engine.runtime.turnscope import TurnOverrun, turn_budget
from mcp_engine.security.grants import GrantBook
from mcp_engine.store.base import Conversation, Store, Timer, TurnWrite

if TYPE_CHECKING:
    from mcp_engine.metrics import Metrics

log = logging.getLogger(__name__)
# The loop budget ends a little after the deadline (half of it, at most half a second): a call cut at the
# deadline ends as a ``timeout`` the flow handles (plugins/integrations/rest.py), and that takes a moment.
OVERRUN_GRACE = 0.5


@dataclass
class InboundMessage:
    """A message as the adapters hand it over; ``type`` "event" with text "timeout" is a timeout event."""

    text: str = ""
    type: str = "text"
    attributes: dict[str, str] = field(default_factory=dict)
    user_id: str = ""
    channel: str = "default"
    metadata: dict[str, str] = field(default_factory=dict)
    user_profile: dict[str, Any] | None = None  # an RFC 7386 merge patch onto the conversation's profile


@dataclass
class Hints:
    force_flow: str | None = None
    priority: str = ""
    bypass_cache: bool = False


class ExecutionService:
    def __init__(
        self,
        store: Store,
        registry: Registry | None = None,
        settings: EngineSettings | None = None,
        services: EngineServices | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics  # None: no metrics, and the turn pays nothing for them
        self.registry = registry or default_registry()
        self.settings = settings or EngineSettings()
        self.services = services or EngineServices()
        self.services.keep_events_in(store.record_events)
        self.services.breakers.observer = metrics
        self.catalogue = FlowCatalogue(
            store,
            self.registry,
            get_backend(self.settings.rules_backend),
            self.services,
            self.settings.compiled_flow_cache,
            GrantBook(self.settings),
            max_bytes=self.settings.compiled_flow_cache_mb * 1024 * 1024,
            limits=limits_of(self.settings),
        )
        self.sinks = SinkFanout(self.registry, self.services, self.settings.event_sinks)
        self.outbound = Outbound(store, self.settings, self.catalogue.tenant, self.catalogue.outbound_session)
        self.lookups = StampedLookups(store)  # a new run's default flow, published version, experiment
        self.experiments = ExperimentService(
            store, self.catalogue, self.settings.enable_ab_testing, lookups=self.lookups
        )

    async def start(self) -> None:
        await self.store.open()
        self.services.breakers.store = self.store.breaker_store()

    async def close(self) -> None:
        await self.outbound.drain()
        await self.sinks.close()
        self.catalogue.close()
        await self.services.close()
        await self.store.close()

    # --- the turn -------------------------------------------------------------------------------

    async def process_message(
        self,
        tenant_id: str,
        conversation_id: str,
        message: InboundMessage,
        hints: Hints | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """One turn. ``deadline`` (``time.monotonic()``) is the caller's (a gRPC client deadline): a turn
        that cannot finish before it, or before ``STATE_EXECUTION_TIMEOUT_MS``, is abandoned unwritten."""
        try:
            return await self._process(tenant_id, conversation_id, message, hints, deadline)
        except EngineError as exc:
            if self.metrics is not None:
                self.metrics.error("request", exc.code)
            raise

    async def _process(
        self,
        tenant_id: str,
        conversation_id: str,
        message: InboundMessage,
        hints: Hints | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        metrics = self.metrics
        self._check_input(tenant_id, conversation_id, message)
        limit = (await self.catalogue.grants(tenant_id)).max_message_bytes or self.settings.max_message_bytes
        if len(message.text) > limit // 4 and len(message.text.encode()) > limit:  # 4 bytes per char at most
            raise PayloadTooLarge(
                f"the message is longer than tenant '{tenant_id}' may send: {limit} bytes",
                {"field": "content.text", "limit": limit},
            )
        message_id = message.metadata.get("message_id") or None
        timeout = self.settings.context_lock_timeout_ms / 1000
        fresh = hints is not None and hints.bypass_cache
        waiting = time.perf_counter()
        try:
            async with self.store.begin_turn(
                tenant_id, conversation_id, message_id, timeout, fresh=fresh
            ) as start:
                if metrics is not None:
                    began = time.perf_counter() - waiting
                    metrics.lock_wait.observe(began)
                    metrics.store["begin"].observe(began)
                if start.reply is not None:
                    return start.reply
                conversation = start.conversation
                event = _event_of(message)
                turn, before = await self._run(
                    tenant_id, conversation_id, conversation, message, event, hints, deadline
                )
                if deadline is not None and time.monotonic() >= deadline:
                    raise DeadlineExceeded("the caller's deadline passed before the turn could be saved")
                reply = self._reply(turn, before, started)
                write = _write(turn, conversation, message_id, reply if message_id is not None else None)
                self._check_size(write)
                committing = time.perf_counter()
                await start.commit(write)
                if metrics is not None:
                    metrics.store["commit"].observe(time.perf_counter() - committing)
        except (DeadlineExceeded, ContextTooLarge) as exc:
            await self._record_abandoned(tenant_id, conversation_id, exc)
            raise
        self.sinks.publish(turn.events)
        if metrics is not None:
            metrics.observe_turn(reply["flow_id"], turn.events, time.perf_counter() - started)
        return reply

    def _check_size(self, write: TurnWrite) -> None:
        """``ContextTooLarge`` when the context the turn would save is over ``MCP_MAX_CONTEXT_BYTES``: the
        turn is abandoned and the stored context stays the previous one. The serialisation is the one the
        store then writes (``TurnWrite.encoded_context``)."""
        size = len(write.encoded_context)
        limit = self.settings.max_context_bytes
        if size > limit:
            raise ContextTooLarge(
                f"the conversation's context would grow to {size} bytes, over the limit of {limit} "
                "(MCP_MAX_CONTEXT_BYTES); the turn was not saved",
                {"limit": limit, "size": size},
            )

    async def _record_abandoned(self, tenant_id: str, conversation_id: str, exc: EngineError) -> None:
        """An ``error`` event (analytics, ``Store.record_events``: ``Store.events`` lists it, the
        conversation's history does not) for a turn abandoned unwritten: the conversation itself (context,
        version, history) is left exactly as it was. A store that cannot
        take the event does not hide ``exc``."""
        event = {
            "type": "error",
            "ts": time.time(),
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "data": {"kind": exc.code, "message": exc.message},
        }
        try:
            await self.store.record_events([event])
        except EngineError as failure:
            log.warning("could not record the abandoned turn of %s: %s", conversation_id, failure.code)

    def _check_input(self, tenant_id: str, conversation_id: str, message: InboundMessage) -> None:
        if not tenant_id or not conversation_id:
            raise InvalidInput(
                "tenant_id and conversation_id are required", {"field": "tenant_id/conversation_id"}
            )
        if message.type not in ("text", "message", "event"):
            raise InvalidInput(
                f"content.type must be text or event, not '{message.type}'", {"field": "content.type"}
            )
        if not message.text.strip():
            raise InvalidInput(
                "the message has no text (an event names itself in its text, e.g. 'timeout')",
                {"field": "content.text"},
            )

    async def _run(
        self,
        tenant_id: str,
        conversation_id: str,
        conversation: Conversation | None,
        message: InboundMessage,
        event: dict[str, Any],
        hints: Hints | None,
        deadline: float | None = None,
    ) -> tuple[Turn, dict[str, Any]]:
        force = hints.force_flow if hints else None
        fresh = hints is not None and hints.bypass_cache
        context = conversation.context if conversation else None
        before = _snapshot(context) if context else {}
        # force_flow naming the flow the run started with goes on with the run, inside a sub-flow too
        new_run = context is None or context["run"]["completed"] or (force and force != run_flow(context))
        assignment: Assignment | None = None
        if new_run:
            stamp = await self.lookups.stamp(fresh)
            flow_id: str = force or (
                context["flow_id"] if context else await self._default_flow(tenant_id, stamp)
            )
            user_id = message.user_id or (context.get("user_id", "") if context else "")
            compiled, assignment = await self.experiments.new_run(
                tenant_id, flow_id, user_id, conversation_id, stamp, fresh
            )
        else:
            assert context is not None
            compiled = await self._current_version(tenant_id, context, fresh)
        if context is None:
            context = new_context(tenant_id, conversation_id, message.user_id, message.channel, compiled.flow)
        elif new_run:
            start_run(context, compiled.flow)
        if assignment is not None:
            assignment.apply(context)
        if message.user_id:
            context["user_id"] = message.user_id
        if message.channel:  # templates follow the channel of the current message (SPEC §3)
            context["channel"] = message.channel
        if message.user_profile is not None:
            context["user_profile"] = self._merged_profile(context.get("user_profile"), message.user_profile)
        limit = compiled.flow.settings.max_message_chars
        if len(message.text) > limit:
            raise InvalidInput(
                f"the message is longer than the flow's {limit} characters", {"field": "content.text"}
            )
        deadline_s = self.settings.state_execution_timeout_ms / 1000
        if deadline is not None:
            deadline_s = min(deadline_s, deadline - time.monotonic())
            if deadline_s <= 0:
                raise DeadlineExceeded("the caller's deadline passed before the turn started")
        ends = time.monotonic() + deadline_s
        turn = Turn(
            compiled,
            context,
            event,
            lambda ref: self._resolve(tenant_id, ref, fresh),
            ends,
            now=self.services.now(),
            metrics=self.metrics,
        )
        if assignment is not None:
            turn.record(EXPOSURE, assignment.exposure())
        try:
            # asyncio.timeout stops the turn where it awaits; the budget where it holds the loop (turnscope)
            with turn_budget(ends + OVERRUN_GRACE * min(deadline_s, 1.0)):
                async with asyncio.timeout(deadline_s):
                    if new_run:
                        await turn.start_run()
                    await turn.deliver()
        except (TimeoutError, TurnOverrun) as exc:
            raise DeadlineExceeded(
                f"the turn did not finish within {deadline_s * 1000:.0f} ms and was abandoned"
            ) from exc
        mark_turn(context, turn.events)
        context["updated_at"] = time.time()
        return turn, before

    def _merged_profile(self, profile: Any, patch: dict[str, Any]) -> dict[str, Any]:
        """The conversation's ``user_profile`` with the message's merged in (RFC 7386: ``null`` removes
        a key), bounded by ``MCP_MAX_USER_PROFILE_BYTES``."""
        merged: dict[str, Any] = merge_patch(profile if isinstance(profile, dict) else {}, patch)
        limit = self.settings.max_user_profile_bytes
        if len(orjson.dumps(merged)) > limit:
            raise InvalidInput(
                f"the user_profile would be larger than {limit} bytes (MCP_MAX_USER_PROFILE_BYTES)",
                {"field": "user_profile", "limit": limit},
            )
        return merged

    async def _current_version(self, tenant_id: str, context: dict[str, Any], fresh: bool) -> CompiledFlow:
        """The version the conversation's run goes on with: the one it started on (SPEC §6), or with
        ``ENABLE_FLOW_VERSIONING`` off the published one, so a publish moves every conversation at its
        next turn (a run in an experiment keeps its variant's version)."""
        flow_id, version = context["flow_id"], context["flow_version"]
        if self.settings.enable_flow_versioning or context["run"].get("variant"):
            return await self.catalogue.version(tenant_id, flow_id, version, fresh)
        compiled = await self.catalogue.published(tenant_id, flow_id, fresh)
        context["flow_version"] = compiled.flow.version
        return compiled

    async def _default_flow(self, tenant_id: str, stamp: str | None) -> str:
        return await self.lookups.get(
            ("default flow", tenant_id), stamp, lambda: self.catalogue.default_flow(tenant_id)
        )

    async def _resolve(self, tenant_id: str, reference: str, fresh: bool = False) -> CompiledFlow:
        """A sub-flow (``flow_id``: its published version) or a pinned flow to return to (``flow@version``;
        the published one with ``ENABLE_FLOW_VERSIONING`` off)."""
        flow_id, _, version = reference.partition("@")
        if version and self.settings.enable_flow_versioning:
            return await self.catalogue.version(tenant_id, flow_id, version, fresh)
        return await self.catalogue.published(tenant_id, flow_id, fresh)

    def _reply(self, turn: Turn, before: dict[str, Any], started: float) -> dict[str, Any]:
        messages = [m.to_dict() for m in turn.messages]
        return {
            "conversation_id": turn.context["conversation_id"],
            "current_state": turn.context["current_state"],
            "response": messages[-1] if messages else {"type": "text", "text": "", "attributes": {}},
            "messages": messages,
            "context_updates": flat_updates(before, turn.context),
            "actions_performed": turn.actions_performed,
            "confidence_scores": turn.scores,
            "processing_time_ms": int((time.perf_counter() - started) * 1000),
            "ab_variant": turn.context["run"].get("variant", ""),
            "flow_id": turn.context["flow_id"],
            "flow_version": turn.context["flow_version"],
        }

    # --- state, reset, history ------------------------------------------------------------------

    async def get_state(self, tenant_id: str, conversation_id: str) -> dict[str, Any]:
        conversation = await self.store.load(tenant_id, conversation_id)
        if conversation is None:
            raise ConversationNotFound(f"conversation '{conversation_id}' not found")
        return conversation.context

    async def reset(self, tenant_id: str, conversation_id: str) -> bool:
        timeout = self.settings.context_lock_timeout_ms / 1000
        async with self.store.lock(tenant_id, conversation_id, timeout):
            return await self.store.reset(tenant_id, conversation_id)

    # --- timers -------------------------------------------------------------------------------

    async def fire_timer(self, timer: Timer) -> list[dict[str, Any]] | None:
        """A server-side timeout's turn (the loop is ``mcp_engine.runtime.timers``): deliver the ``timeout``
        event to the state that armed ``timer``, if the conversation is still in that wait; what it sent,
        also handed to the tenant's outbound webhook, or None when the timer was stale. ``timer`` is
        claimed (leased) by the caller; the turn's commit is what removes it from the store, so a crash
        before it leaves the timer to fire again once the lease ends."""
        timeout = self.settings.context_lock_timeout_ms / 1000
        async with self.store.begin_turn(timer.tenant_id, timer.conversation_id, None, timeout) as start:
            conversation = start.conversation
            current = (conversation.context.get("timer") if conversation else None) or {}
            if (
                conversation is None
                or current.get("run") != timer.run
                or conversation.context.get("current_state") != timer.state
            ):
                await self.store.drop_timer(timer)  # fired already, or its wait is over: nothing to do
                return None
            conversation.context["timer"] = None
            message = InboundMessage(
                text="timeout", type="event", channel=conversation.context.get("channel", "")
            )
            turn, _ = await self._run(
                timer.tenant_id, timer.conversation_id, conversation, message, {"type": "timeout"}, None
            )
            turn.record("timer_fired", {"state": timer.state})
            if turn.timer == "keep":
                turn.timer = None  # the fired timer is done with this commit, unless the turn armed another
            await start.commit(_write(turn, conversation))
        messages = [m.to_dict() for m in turn.messages]
        self.sinks.publish(turn.events)
        if self.metrics is not None:  # a timer's turn: counted, but not a request's latency
            self.metrics.observe_turn(turn.context["flow_id"], turn.events, None)
        await self.outbound.enqueue(timer.tenant_id, timer.conversation_id, messages)
        return messages


def _write(
    turn: Turn,
    conversation: Conversation | None,
    message_id: str | None = None,
    reply: dict[str, Any] | None = None,
) -> TurnWrite:
    """What a finished turn writes: its context over the loaded version, its events, its timer change."""
    return TurnWrite(
        turn.context["tenant_id"],
        turn.context["conversation_id"],
        conversation.version if conversation else None,
        turn.context,
        turn.events,
        message_id,
        reply,
        turn.timer if isinstance(turn.timer, Timer) or turn.timer is None else "keep",
    )


def _event_of(message: InboundMessage) -> dict[str, Any]:
    if message.type == "event":
        return {
            "type": message.text.strip() or "event",
            "text": message.text,
            "attributes": message.attributes,
        }
    return {"type": "message", "text": message.text, "attributes": message.attributes}


def _snapshot(context: dict[str, Any]) -> dict[str, Any]:
    """What ``flat_updates`` compares, copied: cheaper than copying the whole context every turn. The
    context was loaded from JSON, so a JSON round trip copies it, at a fifth of ``copy.deepcopy``'s cost."""
    return {
        "slots": orjson.loads(orjson.dumps(context.get("slots") or {})),
        "variables": orjson.loads(orjson.dumps(context.get("variables") or {})),
        "current_state": context.get("current_state"),
    }

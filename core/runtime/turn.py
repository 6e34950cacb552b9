"""One turn of one conversation (SPEC §4): deliver the event, take transitions, run states.

A ``Turn`` is the ``TurnView`` that plugins see. It changes the context in place and collects the
turn's messages, events and timer; ``ExecutionService`` loads, locks and saves around it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mcp_engine.contract import (
    Action,
    ExtractContext,
    IntegrationClient,
    IntegrationResult,
    OutboundMessage,
    Template,
)
from mcp_engine.flow.models import Flow
from mcp_engine.runtime import turnscope
from mcp_engine.runtime.compiled import CompiledFlow, CompiledState
from mcp_engine.runtime.context import keep_message, namespace, remember
from mcp_engine.runtime.handlers import (
    Owner,
    error_state,
    in_force,
    inherited_intents,
    intent_handler,
    no_match_handler,
)
from mcp_engine.store.base import Timer

if TYPE_CHECKING:
    from mcp_engine.metrics import Metrics

log = logging.getLogger(__name__)
APOLOGY = "Sorry, something went wrong on our side. Let's start again."
FlowResolver = Callable[[str], Awaitable[CompiledFlow]]


class TurnError(Exception):
    """A runtime error inside a turn (SPEC §5): a dead end, a loop, a missing state, exhausted retries."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Turn:
    def __init__(
        self,
        compiled: CompiledFlow,
        context: dict[str, Any],
        event: dict[str, Any] | None,
        resolve_flow: FlowResolver,
        deadline: float,
        now: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.compiled = compiled
        self._metrics = metrics
        self._context = context
        self._message = event  # the turn's event; hidden from states entered before it is delivered
        self._event: dict[str, Any] | None = None
        self._delivered = False
        self._resolve_flow = resolve_flow
        self._deadline = deadline
        self.now = time.time() if now is None else now
        self.messages: list[OutboundMessage] = []
        self.events: list[dict[str, Any]] = []
        self.actions_performed: list[str] = []
        self.scores: dict[str, float] = {}
        self.timer: Timer | str | None = "keep"
        self._steps = 0
        self._pending_flow: tuple[str, str] | None = None
        self._recovering = False
        self._classified = False  # this turn's message was classified: input facts may use the intent
        self._failure: TurnError | None = None  # the current state's ``fail``, until a state is entered

    # --- TurnView -------------------------------------------------------------------------------

    @property
    def context(self) -> dict[str, Any]:
        return self._context

    @property
    def event(self) -> dict[str, Any] | None:
        return self._event

    @property
    def message_pending(self) -> bool:
        return not self._delivered and self._message is not None and self._message.get("type") == "message"

    @property
    def deadline(self) -> float:
        return self._deadline

    @property
    def flow(self) -> Flow:
        return self.compiled.flow

    @property
    def state_name(self) -> str:
        return str(self._context["current_state"])

    @property
    def config(self) -> Any:
        return self.state.plugin.config

    @property
    def state(self) -> CompiledState:
        return self.compiled.states[self.state_name]

    @property
    def state_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self._context.setdefault("state_data", {})
        return data

    def fail(self, kind: str, message: str = "") -> None:
        self._failure = TurnError(kind, f"state '{self.state_name}': {message or kind}")

    def namespace(self) -> dict[str, Any]:
        return namespace(self._context, self._event, self._failure is not None)

    def render(self, template: Template) -> str:
        errors: list[str] = []
        text = template.render(self.namespace(), errors)
        for error in errors:  # the template's literal text was used (SPEC §5: logged and skipped)
            self.record("error", {"kind": "template_error", "message": error})
        return text

    def emit(self, text: str, type: str = "text", **attributes: str) -> None:
        message = OutboundMessage(text, type, {k: str(v) for k, v in attributes.items()})
        self.messages.append(message)
        keep_message(self._context, self.compiled.kept, "assistant", text)
        self.record("message_out", {"text": text, "type": type, "attributes": message.attributes})

    def record(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append(
            {
                "type": event_type,
                "ts": time.time(),
                "tenant_id": self._context["tenant_id"],
                "conversation_id": self._context["conversation_id"],
                "flow_id": self._context.get("flow_id"),
                "flow_version": self._context.get("flow_version"),
                "state": self._context.get("current_state"),
                "run": self._context["run"]["id"],
                "data": data,
            }
        )

    def extract_context(self) -> ExtractContext:
        return ExtractContext(self.flow.settings.timezone, dt.datetime.fromtimestamp(self.now, dt.UTC))

    def integration(self, integration_id: str) -> IntegrationClient:
        return self.compiled.integrations[integration_id]

    def record_integration(self, integration_id: str, result: IntegrationResult) -> None:
        outcome = "success" if result.ok else "error"
        self._context["last_integration"] = {
            "state": self.state_name,
            "id": integration_id,
            "outcome": outcome,
            "error": result.error,
        }
        self.record(
            "integration_call",
            {
                "integration_id": integration_id,
                "outcome": outcome,
                "error": result.error,
                "status": result.status,
                "attempts": result.attempts,
                "latency_ms": round(result.latency_ms, 2),
            },
        )

    def trigger_flow(self, flow_id: str, return_state: str) -> None:
        self._pending_flow = (flow_id, return_state)

    # --- the turn -------------------------------------------------------------------------------

    async def start_run(self) -> None:
        """Enter the initial state of a new run, before the message is delivered."""
        await self._guarded(self._enter_and_follow(self.flow.initial_state))

    async def deliver(self) -> None:
        """Deliver the turn's event to the current state (SPEC §4 step 2)."""
        self._event, self._delivered = self._message, True
        await self._guarded(self._deliver())

    async def _deliver(self) -> None:
        event = self._event or {}
        message = event.get("type") == "message"
        if message:
            self.record(
                "message_in", {"text": event.get("text", ""), "attributes": event.get("attributes", {})}
            )
            keep_message(self._context, self.compiled.kept, "user", str(event.get("text", "")))
        else:  # an event (a timeout): recorded like a message, so a history shows where each turn began
            self.record("event_in", {"event": event.get("type"), "text": event.get("text", "")})
        if self._context["run"]["completed"]:
            return  # the new run ended on entry, before any state waited for this input: nothing takes it
        if message and await self._classify_and_digress(str(event.get("text", ""))):
            self._context["no_match_count"] = 0  # a global handler matched (SPEC §5)
            return
        state = self.state
        started = time.perf_counter()
        await state.plugin.receive(self)
        self._observe_state(state, started)
        index = self._select(state, "input")
        if index is not None:
            self._context["no_match_count"] = 0
            await self._take(state, index)
            return
        if self._failure is not None:
            raise self._failure
        started = time.perf_counter()
        responded = await state.plugin.respond(self)
        self._observe_state(state, started)
        if responded:
            self._context["no_match_count"] = 0
        elif event.get("type") == "message":
            await self._no_match()
        else:  # an event nothing here waits for (a late timeout) is not a miss
            self.record("event_ignored", {"event": event.get("type")})

    async def _classify_and_digress(self, text: str) -> bool:
        """Classify the message; True when a global intent handler took it (SPEC §5), the current flow's
        own or, inside a sub-flow, one it inherits from a flow that called it."""
        state = self.state
        if not text.strip():
            return False
        if state.candidates:
            recent: list[str] = []
            if state.context_turns and self.compiled.context_turns:  # the earlier messages, not this one
                said = [m["text"] for m in self._context["recent_messages"] if m["role"] == "user"]
                recent = said[-state.context_turns - 1 : -1]
            ranked = await self.compiled.classifier.classify_in_context(
                text, state.candidates, self._context, recent
            )
            self._classified = True
            self.scores = {score.name: round(score.confidence, 4) for score in ranked}
            if not ranked:
                self._context["intent"] = {"name": None, "confidence": 0.0}
            else:
                best = ranked[0]
                name, confidence = best.name, best.confidence
                if confidence < state.threshold and state.fallback_intent:
                    name = state.fallback_intent
                self._context["intent"] = {"name": name, "confidence": confidence}
                remember(self._context["intent_history"], name)
                if best.name in state.own_intents:
                    if confidence >= state.threshold:
                        return False  # the state's own transitions answer it
                elif (
                    best.name in self.flow.global_handlers.intents
                    and confidence >= self.flow.settings.confidence_threshold
                ):
                    await self._digress(Owner(self.compiled), best.name)
                    return True
        if not self._context["return_stack"]:
            return False
        for owner, names in inherited_intents(await self._owners(), state):
            ranked = await owner.compiled.classifier.classify_in_context(text, names, self._context)
            if not ranked or ranked[0].confidence < owner.compiled.flow.settings.confidence_threshold:
                continue
            best = ranked[0]
            self._classified = True
            self.scores.update({score.name: round(score.confidence, 4) for score in ranked})
            self._context["intent"] = {"name": best.name, "confidence": best.confidence}
            remember(self._context["intent_history"], best.name)
            await self._digress(owner, best.name)
            return True
        return False

    async def _digress(self, owner: Owner, intent: str) -> None:
        """Take ``owner``'s handler of ``intent``; with ``resume``, remember the interrupted state (its
        data and what it said on entry, to ask again when the digression ends)."""
        handler = intent_handler(owner, intent)
        state = self.state
        if handler.resume:
            self._context["return_stack"].append(
                {
                    "kind": "resume",
                    "flow_id": self.flow.flow_id,
                    "flow_version": self.flow.version,
                    "state": state.name,
                    "state_data": self.state_data,
                    "entry_messages": self._context.get("entry_messages") or [],
                }
            )
        digression = {"intent": intent, "target": handler.target_state, "resume": handler.resume}
        if owner.frame is not None:
            digression["flow_id"] = owner.compiled.flow.flow_id  # a handler inherited from a caller
        self.record("digression", digression)
        await self._leave(state)
        self._move_to(owner, keep_stack=handler.resume)
        await self._enter_and_follow(handler.target_state)

    async def _owners(self) -> list[Owner]:
        """The flows whose global handlers are in force here, nearest first."""
        return await in_force(self.compiled, self._context["return_stack"], self._resolve_flow)

    def _move_to(self, owner: Owner, keep_stack: bool = False) -> None:
        """Go into the flow of a handler: a calling flow's handler leaves the sub-flow (and whatever it was
        in the middle of), unless the handler comes back (``keep_stack``, a ``resume`` digression)."""
        if owner.frame is None:
            return
        if not keep_stack:
            del self._context["return_stack"][owner.frame :]
        self._switch(owner.compiled)

    def _facts(self, state: CompiledState, phase: str) -> dict[str, Any]:
        # intent_match / low_confidence hold on this turn's classification, never on an earlier message's
        entry = phase != "input"
        intent = self._context.get("intent") if not entry and self._classified else None
        integration = self._context.get("last_integration")
        if integration is not None and integration.get("state") != state.name:
            integration = None
        # On entry the event is not there: the state that took it consumed it (or it is still to be
        # delivered), so a state entered after it cannot match it again (event.text is null).
        event = None if entry else self._event
        facts_namespace = namespace(self._context, event, self._failure is not None)
        return state.ruleset.facts("entry" if entry else "input", event, intent, integration, facts_namespace)

    def _select(self, state: CompiledState, phase: str) -> int | None:
        """The index of the transition that holds in ``phase``, timed for the metrics."""
        turnscope.check()
        started = time.perf_counter()
        index = state.evaluator.select(self._facts(state, phase))
        if self._metrics is not None:
            elapsed = time.perf_counter() - started
            self._metrics.flow(self.flow.flow_id).state(state.model.type).transitions.observe(elapsed)
        return index

    def _observe_state(self, state: CompiledState, started: float) -> None:
        if self._metrics is not None:
            elapsed = time.perf_counter() - started
            self._metrics.flow(self.flow.flow_id).state(state.model.type).execution.observe(elapsed)

    async def _take(self, state: CompiledState, index: int) -> None:
        transition = state.transitions[index]
        self.record("transition", {"from": state.name, "to": transition.target, "index": index})
        await self._leave(state)
        if await self._run_actions(transition.actions):
            return
        await self._enter_and_follow(transition.target)

    async def _leave(self, state: CompiledState) -> None:
        await self._run_actions(state.exit_actions)
        if self._context.get("timer"):
            self._context["timer"] = None
            self.timer = None

    async def _run_actions(self, actions: list[Action]) -> bool:
        """Run an action list; True when a ``trigger_flow`` in it took the conversation elsewhere."""
        for action in actions:
            turnscope.check()
            try:
                await action.run(self)
                self.actions_performed.append(action.name)
                self.record("action", {"type": action.name})
            except turnscope.TurnOverrun:
                raise
            except Exception as exc:  # a failed action is logged and skipped (SPEC §5)
                log.warning("action %s failed in state %s: %s", action.name, self.state_name, exc)
                self.record("error", {"kind": "action_failed", "action": action.name, "message": str(exc)})
        if self._pending_flow is None:
            return False
        flow_id, return_state = self._pending_flow
        self._pending_flow = None
        await self._enter_sub_flow(flow_id, return_state)
        return True

    async def _enter_sub_flow(self, flow_id: str, return_state: str) -> None:
        sub = await self._resolve_flow(flow_id)
        self._context["return_stack"].append(
            {
                "kind": "subflow",
                "flow_id": self.flow.flow_id,
                "flow_version": self.flow.version,
                "state": return_state,
            }
        )
        self.record("subflow_started", {"flow_id": flow_id, "version": sub.flow.version})
        self._switch(sub)
        await self._enter_and_follow(sub.flow.initial_state)

    def _switch(self, compiled: CompiledFlow) -> None:
        self.compiled = compiled
        self._context["flow_id"], self._context["flow_version"] = compiled.flow.flow_id, compiled.flow.version

    async def _enter_and_follow(self, name: str) -> None:
        """Enter ``name`` and follow automatic transitions until a state waits (SPEC §4 step 3)."""
        while True:
            await self._enter(name)
            state = self.state
            if state.plugin.ends_run:
                resumed = await self._finish_run()
                if resumed is None:
                    return
                name = resumed
                continue
            index = self._select(state, "entry")
            if index is not None:
                transition = state.transitions[index]
                self.record("transition", {"from": state.name, "to": transition.target, "index": index})
                await self._leave(state)
                if await self._run_actions(transition.actions):
                    return
                name = transition.target
                continue
            if self._failure is not None:
                raise self._failure
            if state.waits:
                return
            raise TurnError("dead_end", f"state '{state.name}' has no transition that holds and cannot wait")

    async def _enter(self, name: str) -> None:
        self._steps += 1
        if self._steps > self.flow.settings.max_steps:
            raise TurnError("loop", f"more than {self.flow.settings.max_steps} transitions in one turn")
        state = self.compiled.states.get(name)
        if state is None:
            raise TurnError("missing_state", f"no state named '{name}' in flow '{self.flow.flow_id}'")
        previous = self._context.get("current_state")
        if previous is not None:
            remember(self._context["previous_states"], previous)
        self._context["current_state"] = name
        self._context["state_data"] = {}
        self._failure = None
        self.record("state_entered", {"state": name, "type": state.model.type})
        first = len(self.messages)
        if await self._run_actions(state.entry_actions):
            raise _Redirected
        started = time.perf_counter()
        await state.plugin.enter(self)
        self._observe_state(state, started)
        if state.waits:  # only a state that waits can be interrupted by a digression
            # what it said on entry (its entry actions' messages and its own): said again when a
            # digression that interrupted it resumes it and it does not ask by itself (StateType.resume)
            self._context["entry_messages"] = [m.to_dict() for m in self.messages[first:]]
        self._arm_timer(state)

    def _arm_timer(self, state: CompiledState) -> None:
        """A state's server-side timeout starts when it is entered (or resumed after a digression)."""
        if state.timeout_ms:
            run = uuid.uuid4().hex
            self._context["timer"] = {"state": state.name, "run": run}
            self.timer = Timer(
                self._context["tenant_id"],
                self._context["conversation_id"],
                self.now + state.timeout_ms / 1000,
                state.name,
                run,
            )

    async def _finish_run(self) -> str | None:
        """An ``end`` state was reached: return from a sub-flow or digression, else complete the run."""
        stack = self._context["return_stack"]
        if not stack:
            self._context["run"]["completed"] = True
            self.record("run_completed", {"state": self.state_name})
            return None
        frame = stack.pop()
        if frame["flow_id"] != self.flow.flow_id or frame["flow_version"] != self.flow.version:
            self._switch(await self._resolve_flow_version(frame["flow_id"], frame["flow_version"]))
        if frame["kind"] == "subflow":
            self.record("subflow_returned", {"state": frame["state"]})
            return str(frame["state"])
        await self._resume(frame)
        return None

    async def _resume(self, frame: dict[str, Any]) -> None:
        """Back in the state a digression interrupted (SPEC §5): it asks again, through
        ``StateType.resume`` or else by saying again what it said on entry, and its timeout starts again.
        Its entry actions and entry do not run again, its data of the visit is as it was, and the
        digression's message is not shown to it: that was not an answer to it."""
        name = str(frame["state"])
        state = self.compiled.states.get(name)
        if state is None:
            raise TurnError("missing_state", f"no state named '{name}' in flow '{self.flow.flow_id}'")
        remember(self._context["previous_states"], self._context["current_state"])
        self._context["current_state"] = name
        self._context["state_data"] = frame.get("state_data") or {}
        self._context["entry_messages"] = entry_messages = frame.get("entry_messages") or []
        self._event, self._failure = None, None
        self.record("resumed", {"state": name})
        if not await state.plugin.resume(self):
            for message in entry_messages:
                self.emit(message["text"], message.get("type", "text"), **message.get("attributes", {}))
        self._arm_timer(state)

    async def _resolve_flow_version(self, flow_id: str, version: str) -> CompiledFlow:
        return await self._resolve_flow(f"{flow_id}@{version}")

    async def _no_match(self) -> None:
        owners = await self._owners() if self._context["return_stack"] else [Owner(self.compiled)]
        found = no_match_handler(owners)
        self._context["no_match_count"] = self._context.get("no_match_count", 0) + 1
        self.record("no_match", {"count": self._context["no_match_count"]})
        if found is None:
            self.emit("Sorry, I didn't get that.")
            return
        owner, handler = found
        if handler.target_state and self._context["no_match_count"] >= handler.max_consecutive:
            self._context["no_match_count"] = 0
            await self._leave(self.state)
            self._move_to(owner)
            await self._enter_and_follow(handler.target_state)
            return
        self.emit(handler.response)

    async def _guarded(self, work: Awaitable[None]) -> None:
        """Run ``work``; a runtime error goes to the error handler (SPEC §5), never losing the context."""
        try:
            await work
        except _Redirected:
            return
        except TurnError as exc:
            await self._recover(exc.kind, str(exc))

    async def _recover(self, kind: str, message: str) -> None:
        self._context["error_count"] = self._context.get("error_count", 0) + 1
        self.record("error", {"kind": kind, "message": message})
        log.info("turn error in %s: %s", self._context["conversation_id"], message)
        if self._recovering:
            self.emit(APOLOGY)
            return
        self._recovering = True
        self._steps = 0
        try:
            owners = await self._owners() if self._context["return_stack"] else [Owner(self.compiled)]
            found = error_state(owners)
            if found is not None:
                self._move_to(found[0])
                await self._enter_and_follow(found[1])
            else:
                # back to the initial state of the run's flow, keeping what the conversation knows (SPEC §5)
                self.emit(APOLOGY)
                self._context["return_stack"] = []
                if owners[-1].compiled is not self.compiled:
                    self._switch(owners[-1].compiled)
                await self._enter_and_follow(self.flow.initial_state)
        except _Redirected:
            return
        except TurnError as again:
            self.record("error", {"kind": again.kind, "message": str(again)})
            self.emit(APOLOGY)


class _Redirected(Exception):
    """An entry action's ``trigger_flow`` took the conversation into a sub-flow: stop the current entry."""

"""The plugin contract: everything a plugin sees of the engine, defined in this one module.

A plugin imports these names from the package root (``from mcp_engine import StateType, hookimpl``), which
exports exactly this module's ``__all__``. There is one base class per plugin kind, each with a ``name``
and a pydantic ``Config`` (``extra="forbid"``) and ``references()`` saying what its configuration points
at, so the flow validator checks a third-party kind exactly like a built-in. What the host needs to know
of a state (which intents it classifies among, its threshold and fallback, its timeout, its required
slots) it asks through ``StateType`` methods when the flow is compiled, never per turn; during a turn a
state or action gets a ``TurnView`` and the engine's narrow ``Services``, never the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from mcp_engine.errors import EngineError
from mcp_engine.flow.models import (
    ERROR_KINDS,
    FLOW_ID_PATTERN,
    CircuitBreaker,
    Flow,
    Integration,
    Intent,
    RetryPolicy,
    State,
    Transition,
)
from mcp_engine.hookspecs import hookimpl
from mcp_engine.regexes import PatternError, Regex, compile_regex, found_in

if TYPE_CHECKING:
    import aiohttp

ReferenceKind = Literal[
    "state",  # names a state of the flow
    "intent",  # names an intent the flow declares
    "slot_collected",  # a slot this state collects
    "slot_used",  # a slot read somewhere (must be collected by some state)
    "integration",  # names an integration the flow declares
    "flow",  # names another flow of the tenant (a sub-flow)
    "slot_rule",  # a slot validation rule string, e.g. "int:1..10"
    "expression",  # an expression of the safe expression language
    "template",  # a Jinja2 template
    "response_path",  # a JSONPath into the response of an integration call (``scope`` names the call)
]


@dataclass(frozen=True)
class Reference:
    """Something a plugin's configuration points at, with the JSON pointer parts of where it is.

    ``scope`` says what the value is relative to where that matters: for a ``response_path``, the call
    whose response it reads, as ``(integration_id, method, endpoint)`` (the endpoint as the flow writes
    it), so the validator can try it on the response the integration documents."""

    kind: ReferenceKind
    value: str
    path: tuple[str | int, ...] = ()
    scope: tuple[str, ...] = ()


class EmptyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Plugin:
    """What every plugin kind shares: a registered name and a typed configuration."""

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    description: ClassVar[str] = ""

    @classmethod
    def references(cls, config: Any) -> Iterator[Reference]:
        """Yield what ``config`` (an instance of ``Config``) refers to; nothing by default."""
        yield from ()


@dataclass(frozen=True)
class Classification:
    """How a state classifies a message (``StateType.classification``).

    ``candidates``: the intents ranked, None for those the state's own transitions name (so
    ``intent_match`` works in any state); the global handlers' intents are always added. ``threshold``:
    None for the flow's ``settings.confidence_threshold``. ``fallback_intent``: the intent taken when the
    best one scores below the threshold (None: keep the best one, and ``low_confidence`` holds).
    ``context_turns``: how many of the conversation's earlier messages a classifier that reads context
    (``IntentClassifier.reads_context``) sees with the message (0: none).
    """

    candidates: tuple[str, ...] | None = None
    threshold: float | None = None
    fallback_intent: str | None = None
    context_turns: int = 0


class StateType(Plugin):
    """A kind of state. ``consumes_input``: the state waits for a message (intent, slot_filling, wait);
    ``ends_run``: entering it completes the run (end).

    One instance per state of a compiled flow, made when the flow is compiled (never per turn), with the
    state's name and parsed ``config``; do any preparation in ``__init__`` or ``prepare``. What the turn
    needs to know of the state beyond its behaviour (``classification``, ``timeout_ms``,
    ``required_slots``) it asks once, at compile time, from the configuration alone (possibly before
    ``prepare``), and never again per turn.
    """

    consumes_input: ClassVar[bool] = False
    ends_run: ClassVar[bool] = False

    def __init__(self, name: str, config: Any) -> None:
        self.name_in_flow = name
        self.config = config

    def classification(self, flow: Flow) -> Classification:
        """Which intents a message is classified among here, against which threshold, with which fallback.
        The default: the intents the state's transitions name, the flow's threshold, no fallback."""
        return Classification()

    def timeout_ms(self) -> int | None:
        """A server-side timeout armed each time the state is entered: when it passes with the conversation
        still here, a ``timeout`` event is delivered (SPEC §6). None (the default): no timer."""
        return None

    def required_slots(self) -> tuple[str, ...]:
        """The slots this state requires: ``slot_filled`` without a value holds once all are filled."""
        return ()

    def prepare(self, assets: FlowAssets) -> None:
        """Compile what the state needs (templates, slot rules) once, when its flow is compiled."""

    async def enter(self, turn: TurnView) -> None:
        """Run the state's "on entry" behaviour (SPEC §3): emit, call, extract. Nothing by default."""

    async def receive(self, turn: TurnView) -> None:
        """Take in the delivered event (extract, classify, validate) before the transitions are evaluated.

        Emit nothing here: a transition may take the conversation elsewhere. Nothing by default.
        """

    async def respond(self, turn: TurnView) -> bool:
        """Answer by itself when no transition held after ``receive`` and the state stays (a re-prompt,
        a retry prompt): return True. False (the default) lets the no-match handler answer."""
        return False

    def implied_transitions(self) -> Sequence[Mapping[str, Any]]:
        """Transitions the state's configuration implies, as a document writes them (``{"condition",
        "condition_value", "target_state", "actions"}``), tried after the state's own in this order, and
        compiled with them once per flow version (the integration state's ``error_handling``). None by
        default. Their targets and templates are checked through ``references`` like the config's."""
        return ()

    async def resume(self, turn: TurnView) -> bool:
        """Ask again when a digression that interrupted the state ends (SPEC §5: a ``resume`` handler):
        return True when the state asked by itself (slot_filling asks for the slot it still misses).
        False (the default) lets the engine say again what the state said when it was entered. Neither
        ``enter`` nor the entry actions run again; ``turn.state_data`` is the visit's, as it was."""
        return False


class Action(Plugin):
    """An action run on entry, on exit or on a transition; its params are ``Config``.

    One instance per action occurrence in a compiled flow, holding its parsed params.
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    def prepare(self, assets: FlowAssets) -> None:
        """Compile what the action needs (templates, expressions) once, when its flow is compiled."""

    async def run(self, turn: TurnView) -> None:
        """Do the action. An exception is logged and the action skipped (SPEC §5); the turn goes on."""
        raise NotImplementedError(f"action '{self.name}' does not implement run()")


ConditionKind = Literal["input", "automatic"]


class ConditionType(Plugin):
    """A transition condition.

    ``kind`` says when it is evaluated (SPEC §4): ``input`` conditions only when an event was
    delivered, ``automatic`` ones also right after a state is entered. ``value`` says whether the
    transition's ``condition_value`` is required, optional or meaningless for it.

    A condition is compiled once, with its flow, into a rule of the state's ruleset (``mcp_engine.rulesets``).
    It takes part in one of two ways, and a plugin implements exactly one of them:

    - ``rule(value, ctx)`` returns the condition in durable_rules' JSON vocabulary over the event's facts
      (``{"intent": "order"}``, ``{"$lt": {"confidence": 0.5}}``, ``$and``/``$or``/``$ex``/``$nex``), so every
      rules backend evaluates it natively; ``ctx`` (a ``RuleContext``) gives typed fields for context paths
      and Python-evaluated facts for what the vocabulary cannot say;
    - ``holds(value, namespace)`` answers in Python on each evaluation, over the expression namespace
      (``slots``, ``variables``, ``intent``, ``event``, ...); the compiler posts its answer as a boolean fact.
    """

    kind: ClassVar[ConditionKind] = "automatic"
    value: ClassVar[Literal["required", "optional", "none"]] = "none"
    reads_expression: ClassVar[bool] = False  # the transition's ``expression`` is its (required) argument

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        """Yield what a transition's ``condition_value`` refers to."""
        yield from ()

    @classmethod
    def validate_value(cls, value: str) -> None:
        """Raise ``ValueError`` with a designer-readable message when ``condition_value`` is not valid."""

    @classmethod
    def excludes(cls, value: str | None, other: type[ConditionType], other_value: str | None) -> bool:
        """Whether this condition (with ``value``) and ``other`` (with ``other_value``) can never hold for
        the same event; the validator then does not warn about the two sharing a priority. Asked both
        ways round; False (the default) is always safe."""
        return False

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any] | None:
        """The condition in durable_rules' vocabulary, or None to be evaluated by ``holds``.

        Called once per transition at compile time, never per turn: do any parsing here. Comparisons need
        no ``$ex`` guards (the compiler adds them), and ``ctx.field(path, category)`` names a fact that is
        posted only when the value at ``path`` has that type, which keeps comparisons strictly typed.
        """
        return None

    @classmethod
    def holds(cls, value: str | None, namespace: Mapping[str, Any]) -> bool:
        """Whether the condition holds now; used when ``rule`` returns None, once per evaluation."""
        raise NotImplementedError(f"condition '{cls.name}' implements neither rule() nor holds()")


class IntegrationClient(Plugin):
    """A client for one integration ``type`` (``rest`` is built in).

    One instance per declared integration of a compiled flow. ``call`` never raises for a failed call:
    it returns an ``IntegrationResult`` with an error kind (timeout, http_4xx, http_5xx, network, mapping).
    """

    def __init__(self, integration: Integration, services: Services) -> None:
        self.integration = integration
        self.services = services

    async def call(self, request: IntegrationRequest) -> IntegrationResult:
        raise NotImplementedError(f"integration client '{self.name}' does not implement call()")


class IntentClassifier(Plugin):
    """Classifies a message among candidate intents; one instance per compiled flow."""

    def __init__(self, intents: Mapping[str, Intent], config: Any, services: Services) -> None:
        self.intents = intents
        self.config = config
        self.services = services

    reads_context: ClassVar[bool] = False
    """True when the classifier's ``classify_in_context`` reads ``recent``: in a state with ``context_aware``
    it is then given the conversation's earlier user messages. A classifier that leaves this False gets
    none, and the engine keeps no messages for it beyond the flow's ``settings.history_messages``."""

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        """Ranked scores (highest first) among ``candidates`` (intent names); may be empty."""
        raise NotImplementedError(f"classifier '{self.name}' does not implement classify()")

    async def classify_in_context(
        self,
        text: str,
        candidates: Sequence[str],
        context: Mapping[str, Any],
        recent: Sequence[str] = (),
    ) -> list[IntentScore]:
        """What the turn calls: ``classify``, for a classifier that also reads the conversation's
        ``context`` (user_profile, recent_messages, ...; read it, never change it) and, in a
        ``context_aware`` state of a classifier with ``reads_context``, ``recent``: the user's messages
        before this one, oldest first. The default ignores both."""
        return await self.classify(text, candidates)


class EventSink(Plugin):
    """Receives the events of every turn (SPEC §8). Delivery never blocks or fails a turn."""

    def __init__(self, config: Any, services: Services) -> None:
        self.config = config
        self.services = services

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError(f"event sink '{self.name}' does not implement publish()")

    async def close(self) -> None:
        """Flush and release what the sink holds."""


class RuleKind(Plugin):
    """A slot validation rule kind: the part before ``:`` of a rule string like ``int:1..10``."""

    @classmethod
    def parse(cls, argument: str | None) -> Any:
        """Parse the part after ``:``; raise ``ValueError`` with a designer-readable message."""
        if argument:
            raise ValueError(f"rule '{cls.name}' takes no argument")
        return None

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        """Every value of this kind found in ``text`` (``rule`` is what ``parse`` returned), in text order.

        A value that is there but breaks the rule (30 for ``int:1..20``) is returned with ``valid=False``.
        """
        return []


@dataclass(frozen=True, slots=True)
class IntentScore:
    """One ranked answer of an intent classifier."""

    name: str
    confidence: float


@dataclass(slots=True)
class OutboundMessage:
    """A message the engine sends in a turn; ``attributes`` travel to the channel (delay_ms, ...)."""

    text: str
    type: str = "text"
    attributes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class IntegrationRequest:
    """One call to an integration, everything already rendered and mapped by the engine."""

    method: str
    endpoint: str  # rendered path (or full URL) joined to the integration's base_url by the client
    params: dict[str, Any]  # request_mapping results: query parameters for GET, JSON body otherwise
    timeout_ms: int  # per attempt
    max_retries: int
    backoff_ms: int
    retry_on: tuple[str, ...]  # error kinds that are retried; http_4xx never is
    deadline: float  # time.monotonic() after which no attempt may start (the turn's deadline)
    integration_id: str = ""  # the integration's id in the flow (what the Adaptor Service is told)


@dataclass(frozen=True, slots=True)
class IntegrationResult:
    """What a call gave: data on success, else an error kind (timeout, http_4xx, http_5xx, network,
    mapping)."""

    ok: bool
    data: Any = None
    error: str | None = None
    message: str = ""
    status: int | None = None
    attempts: int = 1
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ExtractContext:
    """What slot extraction needs to know about the conversation: its clock and timezone."""

    timezone: str = "UTC"
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True, slots=True)
class Found:
    """A value a rule found in text: ``valid`` is False when it is there but breaks the rule (``reason``)."""

    value: Any
    start: int
    end: int
    valid: bool = True
    reason: str = ""


class Template(Protocol):
    """A template compiled once per flow version."""

    def render(self, namespace: Mapping[str, Any], errors: list[str] | None = None) -> str:
        """The text (never raises); a render that failed gives its literal text and, with ``errors``,
        appends why to it."""
        ...


class FlowAssets(Protocol):
    """What a state type or action may prepare from when its flow is compiled (``prepare``)."""

    @property
    def flow(self) -> Flow: ...

    def template(self, text: str) -> Template:
        """Compile ``text`` once for this flow version."""
        ...

    @property
    def rule_kinds(self) -> Mapping[str, Any]:
        """The registered slot rule kind classes by name (``int``, ``enum``, ...)."""
        ...

    def expression(self, text: str) -> Callable[[Mapping[str, Any]], Any]:
        """Compile an expression of the safe language once; call it with ``turn.namespace()``."""
        ...


class TurnView(Protocol):
    """The turn as state types and actions see it."""

    @property
    def context(self) -> dict[str, Any]:
        """The conversation's context (slots, variables, user_profile, ...); change it in place."""
        ...

    @property
    def event(self) -> dict[str, Any] | None:
        """The event delivered this turn (``{"type", "text", "attributes"}``) or None on entry."""
        ...

    @property
    def message_pending(self) -> bool:
        """True while the turn's message is still to be delivered: a new run enters its initial state
        (and follows its automatic transitions) before the first message reaches the state it waits in.
        A state entered then should not ask for what that message may answer (slot_filling does not
        prompt): it gets the message in ``receive`` if the run waits there, and asks in ``respond``. The
        message is delivered once; one unusable first message gets one prompt."""
        ...

    @property
    def flow(self) -> Flow: ...

    @property
    def state_name(self) -> str: ...

    @property
    def config(self) -> BaseModel:
        """The current state's parsed ``config``."""
        ...

    @property
    def state_data(self) -> dict[str, Any]:
        """The current state's own data for this visit (retry counts, what was asked): kept with the
        context across turns while the conversation stays, emptied each time a state is entered.
        JSON values only."""
        ...

    def fail(self, kind: str, message: str = "") -> None:
        """Say the current state cannot go on (``kind`` is the error kind, e.g. ``retries_exhausted``).

        Its transitions are still evaluated, with ``slot_filling.exhausted`` true for expressions, so one
        may take it; if none does, the error handler does (SPEC §5) and records ``kind``.
        """
        ...

    def namespace(self) -> dict[str, Any]:
        """The expression/template namespace: slots, variables, user_profile, intent, event, ..."""
        ...

    def render(self, template: Template) -> str:
        """Render a template prepared at compile time against this turn's namespace."""
        ...

    def emit(self, text: str, type: str = "text", **attributes: str) -> None:
        """Send a message in this turn's reply."""
        ...

    def record(self, event_type: str, data: dict[str, Any]) -> None:
        """Append an analytics event to the turn (kept in history, published to sinks)."""
        ...

    def extract_context(self) -> ExtractContext: ...

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` past which the turn is abandoned: no call may start after it."""
        ...

    def integration(self, integration_id: str) -> Any:
        """The ``IntegrationClient`` of a declared integration of this flow."""
        ...

    def record_integration(self, integration_id: str, result: IntegrationResult) -> None:
        """Remember a call's outcome for ``integration_success``/``integration_error``, and record it."""
        ...

    def trigger_flow(self, flow_id: str, return_state: str) -> None:
        """Run another flow of the tenant once the current action list has run (SPEC §2)."""
        ...


class CircuitGuard(Protocol):
    """A circuit breaker (``Services.breaker``): ask before a call, report after it."""

    async def allow(self) -> bool:
        """Whether the call may go through now; False: fail it at once (error kind ``circuit_open``)."""
        ...

    async def record(self, ok: bool) -> None:
        """Report how the call ``allow`` let through went: ``ok`` False for a timeout, a network error or
        a 5xx (the service's health), True for anything else."""
        ...

    async def call(self, client: IntegrationClient, request: IntegrationRequest) -> IntegrationResult:
        """``client.call(request)`` behind this breaker: ``allow``, the call, ``record`` of its result; an
        open breaker answers at once with the error kind ``circuit_open``."""
        ...


class Services(Protocol):
    """The engine's shared resources, made once per engine and closed with it: what a plugin may reach
    beyond its turn. Deliberately narrow: no store, no other conversation, no engine internals."""

    env: Mapping[str, str]
    """The engine's environment: where ``${env:NAME}`` secrets and a plugin's own settings are read."""

    def http(self) -> aiohttp.ClientSession:
        """The engine's shared aiohttp session (connection pooling, DNS cache), opened on first use."""
        ...

    def now(self) -> float:
        """The engine's clock, in epoch seconds (a test may set it)."""
        ...

    def breaker(self, scope: tuple[str, ...], label: str, policy: CircuitBreaker) -> CircuitGuard:
        """The circuit breaker of ``scope`` (e.g. ``("model", url)``), shared by every engine process on
        the production store; ``label`` names it in metrics. Ask for it once (at compile time), not per
        call."""
        ...

    async def write_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append analytics events to the engine's own store (what the ``store`` event sink does);
        ``RuntimeError`` when the engine keeps no events (a bare ``Services`` in a test)."""
        ...


FieldCategory = Literal["num", "str", "bool", "any"]


class RuleContext(Protocol):
    """What a condition type sees while its transition compiles (``ConditionType.rule(value, ctx)``): the
    flow, state and transition, compile-time constants of the state, and the means to name facts."""

    ALWAYS: ClassVar[dict[str, Any]]
    NEVER: ClassVar[dict[str, Any]]  # a transition whose rule is NEVER gets no rule at all

    @property
    def flow(self) -> Flow: ...

    @property
    def state_name(self) -> str: ...

    @property
    def state(self) -> State: ...

    @property
    def transition(self) -> Transition: ...

    @property
    def kind(self) -> ConditionKind: ...

    @property
    def confidence_threshold(self) -> float:
        """The threshold of this state's classification (``StateType.classification``), else the flow's."""
        ...

    @property
    def required_slots(self) -> tuple[str, ...]:
        """The slots this state requires (``StateType.required_slots``), else none."""
        ...

    def field(self, path: tuple[str | int, ...], category: FieldCategory) -> str:
        """The fact key holding the value at ``path`` (e.g. ``("slots", "size")``) when it is of ``category``.

        ``num`` is an int or float but not a bool, ``str`` and ``bool`` are what they say, and ``any`` is
        posted as true whenever the value is not null.
        """
        ...

    def predicate(self, test: Callable[[Mapping[str, Any]], bool], source: str) -> dict[str, Any]:
        """A condition on a Python test of the namespace, run once per evaluation and posted as a fact."""
        ...

    def expression(self, text: str) -> dict[str, Any]:
        """An expression's condition: vocabulary where it is exact, Python-evaluated facts elsewhere."""
        ...


__all__ = [
    "ERROR_KINDS",
    "FLOW_ID_PATTERN",
    "Action",
    "CircuitBreaker",
    "CircuitGuard",
    "Classification",
    "ConditionType",
    "EngineError",
    "EventSink",
    "ExtractContext",
    "FieldCategory",
    "Flow",
    "FlowAssets",
    "Found",
    "Integration",
    "IntegrationClient",
    "IntegrationRequest",
    "IntegrationResult",
    "Intent",
    "IntentClassifier",
    "IntentScore",
    "OutboundMessage",
    "PatternError",
    "Reference",
    "Regex",
    "RetryPolicy",
    "RuleContext",
    "RuleKind",
    "Services",
    "StateType",
    "Template",
    "TurnView",
    "compile_regex",
    "found_in",
    "hookimpl",
]

"""The plugin kinds: one small base class per kind, each with a ``name`` and a pydantic ``Config``.

A plugin subclasses one of these, sets ``name``, declares its ``Config`` (``extra="forbid"``) and
describes what its configuration refers to with ``references()``. The flow validator works only
through this interface, so a third-party state type or action is checked exactly like a built-in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from mcp_engine.flow.models import Integration, Intent
    from mcp_engine.rulesets.context import RuleContext
    from mcp_engine.runtime.services import Services
    from mcp_engine.runtime.view import (
        ExtractContext,
        FlowAssets,
        Found,
        IntegrationRequest,
        IntegrationResult,
        IntentScore,
        TurnView,
    )

ReferenceKind = Literal[
    "state",  # names a state of the flow
    "intent",  # names an intent the flow declares
    "slot_collected",  # a slot this state collects
    "slot_used",  # a slot read somewhere (must be collected by some slot_filling state)
    "integration",  # names an integration the flow declares
    "slot_rule",  # a slot validation rule string, e.g. "int:1..10"
    "expression",  # an expression of the safe expression language
    "template",  # a Jinja2 template
]


@dataclass(frozen=True)
class Reference:
    """Something a plugin's configuration points at, with the JSON pointer parts of where it is."""

    kind: ReferenceKind
    value: str
    path: tuple[str | int, ...] = ()


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


class StateType(Plugin):
    """A kind of state. ``consumes_input``: the state waits for a message (intent, slot_filling, wait).

    One instance per state of a compiled flow, made when the flow is compiled (never per turn), with the
    state's name and parsed ``config``; do any preparation in ``__init__``.
    """

    consumes_input: ClassVar[bool] = False
    ends_run: ClassVar[bool] = False

    def __init__(self, name: str, config: Any) -> None:
        self.name_in_flow = name
        self.config = config

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

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        """Yield what a transition's ``condition_value`` refers to."""
        yield from ()

    @classmethod
    def validate_value(cls, value: str) -> None:
        """Raise ``ValueError`` with a designer-readable message when ``condition_value`` is not valid."""

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

    async def classify(self, text: str, candidates: Sequence[str]) -> list[IntentScore]:
        """Ranked scores (highest first) among ``candidates`` (intent names); may be empty."""
        raise NotImplementedError(f"classifier '{self.name}' does not implement classify()")


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

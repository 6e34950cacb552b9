"""The plugin kinds: one small base class per kind, each with a ``name`` and a pydantic ``Config``.

A plugin subclasses one of these, sets ``name``, declares its ``Config`` (``extra="forbid"``) and
describes what its configuration refers to with ``references()``. The flow validator works only
through this interface, so a third-party state type or action is checked exactly like a built-in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from mcp_engine.rulesets.context import RuleContext

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
    """A kind of state. ``consumes_input``: the state waits for a message (intent, slot_filling, wait)."""

    consumes_input: ClassVar[bool] = False
    ends_run: ClassVar[bool] = False


class Action(Plugin):
    """An action run on entry, on exit or on a transition; its params are ``Config``."""


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
    """A client for one integration ``type`` (``rest`` is built in)."""


class RuleKind(Plugin):
    """A slot validation rule kind: the part before ``:`` of a rule string like ``int:1..10``."""

    @classmethod
    def parse(cls, argument: str | None) -> Any:
        """Parse the part after ``:``; raise ``ValueError`` with a designer-readable message."""
        if argument:
            raise ValueError(f"rule '{cls.name}' takes no argument")
        return None

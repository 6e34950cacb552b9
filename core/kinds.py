"""The plugin kinds: one small base class per kind, each with a ``name`` and a pydantic ``Config``.

A plugin subclasses one of these, sets ``name``, declares its ``Config`` (``extra="forbid"``) and
describes what its configuration refers to with ``references()``. The flow validator works only
through this interface, so a third-party state type or action is checked exactly like a built-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

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
    """

    kind: ClassVar[ConditionKind] = "automatic"
    value: ClassVar[Literal["required", "optional", "none"]] = "none"

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        """Yield what a transition's ``condition_value`` refers to."""
        yield from ()


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

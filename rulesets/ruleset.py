"""A compiled state: its rules in durable_rules' vocabulary, and the builder of the facts they test.

Both backends see the same flat facts dict per evaluation, built here once:

- ``phase``: ``"input"`` (an event was delivered: every rule) or ``"entry"`` (only automatic rules);
- engine fields, posted only when present and always of one type: ``input`` (true when a message arrived),
  ``event_type`` (str), ``intent`` (str), ``confidence`` (float), ``integration`` (``"success"|"error"``),
  ``integration_error`` (str);
- typed fields extracted from the namespace, e.g. ``slots.size:str``, posted only when the value at the
  path has that type (``num``: int/float but not bool; ``str``; ``bool``; ``any``: not null, posted as true),
  so a comparison over them is strictly typed on every backend;
- ``_c.<n>: true`` for each Python-evaluated condition that holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mcp_engine.contract import ConditionKind, FieldCategory
from mcp_engine.rulesets.vocab import INT_LIMIT, Condition

Facts = dict[str, Any]
Category = FieldCategory
Phase = Literal["input", "entry"]
Reader = Callable[[Mapping[str, Any]], Any]
EMPTY: Mapping[str, Any] = {}


def typed_value(category: Category, value: Any) -> Any:
    """The value to post for ``category``, or None when it is not posted.

    Numbers beyond int64 (and infinities) are clamped to +-INT_LIMIT, which compares like them with every
    literal a rule may hold; integral floats become ints; NaN equals nothing and is not posted.
    """
    kind = type(value)
    if category == "num":
        if (kind is not int and kind is not float) or value != value:  # value != value: NaN
            return None
        if not -INT_LIMIT < value < INT_LIMIT:
            return INT_LIMIT if value > 0 else -INT_LIMIT
        return int(value) if kind is float and value.is_integer() else value
    if category == "any":
        return None if value is None else True
    return value if kind is (str if category == "str" else bool) else None


@dataclass(frozen=True, slots=True)
class Field:
    """A typed field posted from a namespace path; ``input_only``: only input rules read it."""

    key: str
    path: tuple[str | int, ...]
    category: Category
    read: Reader
    input_only: bool


@dataclass(frozen=True, slots=True)
class Predicate:
    """A Python-evaluated condition, posted as ``key: true`` when it holds; ``source`` is for people."""

    key: str
    test: Callable[[Mapping[str, Any]], bool]
    source: str
    input_only: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """One transition as a rule: ``pri`` is its place in (priority, document order); lower fires first."""

    name: str
    pri: int
    index: int
    kind: ConditionKind
    condition: Condition


def durable_rules(rules: Iterable[Rule]) -> dict[str, Any]:
    """Rules as durable_rules reads them: ``{name: {"pri": n, "all": [{"m": condition}]}}``."""
    return {rule.name: {"pri": rule.pri, "all": [{"m": rule.condition}]} for rule in rules}


@dataclass(frozen=True)
class StateRuleset:
    """A state's transitions compiled once: rules in ``pri`` order, plus what the facts builder posts."""

    state: str
    rules: tuple[Rule, ...]
    fields: tuple[Field, ...]
    predicates: tuple[Predicate, ...]

    def durable(self) -> dict[str, Any]:
        """The whole ruleset in durable_rules' JSON form, e.g. to read or log it."""
        return durable_rules(self.rules)

    def facts(
        self,
        phase: Phase,
        event: Mapping[str, Any] | None = None,
        intent: Mapping[str, Any] | None = None,
        integration: Mapping[str, Any] | None = None,
        namespace: Mapping[str, Any] = EMPTY,
    ) -> Facts:
        """The one event both backends evaluate (see the module docstring for its fields)."""
        if phase not in ("input", "entry"):
            raise ValueError(f"phase is 'input' or 'entry', got {phase!r}")
        facts: Facts = {"phase": phase}
        if event is not None and type(event_type := event.get("type")) is str:
            facts["event_type"] = event_type
            if event_type == "message":
                facts["input"] = True
        if intent is not None:
            if type(name := intent.get("name")) is str:
                facts["intent"] = name
            confidence: Any = intent.get("confidence")
            if type(confidence) in (int, float) and math.isfinite(confidence):
                facts["confidence"] = float(confidence)
        if integration is not None:
            if (outcome := integration.get("outcome")) in ("success", "error"):
                facts["integration"] = outcome
            if type(kind := integration.get("error")) is str:
                facts["integration_error"] = kind
        entry = phase == "entry"
        for field in self.fields:
            if not (entry and field.input_only):
                value = typed_value(field.category, field.read(namespace))
                if value is not None:
                    facts[field.key] = value
        for predicate in self.predicates:
            if not (entry and predicate.input_only) and predicate.test(namespace):
                facts[predicate.key] = True
        return facts


class Evaluator(Protocol):
    """A ruleset loaded into a backend."""

    def select(self, facts: Facts) -> int | None:
        """The index (in the state's transitions) of the first rule that holds, or None."""
        ...

    def close(self) -> None:
        """Release what the backend holds for this ruleset; idempotent."""
        ...


class Backend(Protocol):
    name: str

    def load(self, ruleset: StateRuleset) -> Evaluator: ...

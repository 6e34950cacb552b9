"""What a condition type sees while its transition compiles: the ``RuleContext`` of ``ConditionType.rule``.

The context names the facts a rule may test beyond the engine's own: typed fields read from the
expression namespace, and Python-evaluated conditions. A state's transitions share one ``FactPlan``, so
a field two rules compare is read once per evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mcp_engine.contract import ConditionKind, StateType
from mcp_engine.expressions.evaluate import compile_expression
from mcp_engine.expressions.nodes import Attr, Index, Name, Node
from mcp_engine.flow.models import Flow, State, Transition
from mcp_engine.rulesets.pushdown import expression_condition
from mcp_engine.rulesets.ruleset import Category, Field, Predicate, Reader
from mcp_engine.rulesets.vocab import FALSE, TRUE

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def path_node(path: tuple[str | int, ...]) -> Node:
    """The expression node of a dotted path, so a field reads exactly as an expression would."""
    root, *keys = path
    node: Node = Name(0, str(root))
    for key in keys:
        node = Index(0, node, key) if isinstance(key, int) else Attr(0, node, key)
    return node


@dataclass
class FactPlan:
    """The typed fields and Python-evaluated facts of one state's ruleset, collected while it compiles."""

    fields: dict[tuple[tuple[str | int, ...], Category], Field] = field(default_factory=dict)
    predicates: list[Predicate] = field(default_factory=list)

    def field(self, path: tuple[str | int, ...], category: Category, kind: ConditionKind) -> str:
        known = self.fields.get((path, category))
        if known is None:
            readable = all(isinstance(p, int) or _IDENTIFIER.fullmatch(p) for p in path)
            name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:]
            key = f"{name if readable else f'_f.{len(self.fields)}'}:{category}"
            read: Reader = compile_expression(path_node(path))
            known = Field(key, path, category, read, input_only=True)
        if kind == "automatic" and known.input_only:
            known = Field(known.key, path, category, known.read, input_only=False)
        self.fields[(path, category)] = known
        return known.key

    def predicate(self, test: Callable[[Mapping[str, Any]], bool], source: str, kind: ConditionKind) -> str:
        key = f"_c.{len(self.predicates)}"
        self.predicates.append(Predicate(key, test, source, input_only=kind == "input"))
        return key


@dataclass(frozen=True)
class TransitionContext:
    """The ``RuleContext`` of one transition: the flow, state and transition being compiled, and the means
    to name facts for its rule."""

    ALWAYS: ClassVar[dict[str, Any]] = TRUE
    NEVER: ClassVar[dict[str, Any]] = FALSE  # a transition whose rule is NEVER gets no rule at all

    flow: Flow
    state_name: str
    state: State
    transition: Transition
    kind: ConditionKind
    plan: FactPlan
    plugin: StateType

    @property
    def confidence_threshold(self) -> float:
        """The threshold of the state's classification if it sets one, else the flow's."""
        own = self.plugin.classification(self.flow).threshold
        return self.flow.settings.confidence_threshold if own is None else own

    @property
    def required_slots(self) -> tuple[str, ...]:
        return self.plugin.required_slots()

    def field(self, path: tuple[str | int, ...], category: Category) -> str:
        """The fact key holding the value at ``path`` (e.g. ``("slots", "size")``) when it is of ``category``.

        ``num`` is an int or float but not a bool, ``str`` and ``bool`` are what they say, and ``any`` is
        posted as true whenever the value is not null.
        """
        return self.plan.field(path, category, self.kind)

    def predicate(self, test: Callable[[Mapping[str, Any]], bool], source: str) -> dict[str, Any]:
        """A condition on a Python test of the namespace, run once per evaluation and posted as a fact."""
        return {"$ex": {self.plan.predicate(test, source, self.kind): 1}}

    def expression(self, text: str) -> dict[str, Any]:
        """An expression's condition: vocabulary where it is exact, Python-evaluated facts elsewhere."""
        return expression_condition(text, self)

"""The default rules backend: each rule's vocabulary compiled once into closures over the facts dict.

Comparisons are strictly typed (a missing field or a value of another type is false; a bool is not a
number), which is what the typed facts make durable_rules do too: this backend is the test oracle.
A ``$ex`` guard followed in the same ``$and`` by a comparison of its field is dropped, since the
closure's own check implies it. Rules are tried in ``pri`` order; input rules are left out of the
list tried for other phases, and a state with many rules is indexed on the ``intent`` it requires,
so a 50-intent menu tries the few rules of the event's intent plus those that do not name one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp_engine.rulesets.ruleset import Facts, Rule, StateRuleset
from mcp_engine.rulesets.vocab import COMPARE_OPS, Condition

Test = Callable[[Facts], bool]
Entry = tuple[Test, int]
INDEX_MIN_RULES = 8  # below this a linear scan is as fast as the lookup

_NUMBER = (int, float)


def _equals(key: str, literal: Any) -> Test:
    if isinstance(literal, bool):
        return lambda facts: facts.get(key) is literal
    if isinstance(literal, str):
        return lambda facts: facts.get(key) == literal

    def equals_number(facts: Facts) -> bool:
        value = facts.get(key)
        return type(value) in _NUMBER and value == literal

    return equals_number


def _compare(op: str, key: str, literal: Any) -> Test:
    """``$neq`` or an ordering: true only for a posted value of the literal's type."""
    kinds = (bool,) if isinstance(literal, bool) else (str,) if isinstance(literal, str) else _NUMBER
    if op == "$neq":
        return lambda facts: type(v := facts.get(key)) in kinds and v != literal
    if op == "$lt":
        return lambda facts: type(v := facts.get(key)) in kinds and v < literal
    if op == "$lte":
        return lambda facts: type(v := facts.get(key)) in kinds and v <= literal
    if op == "$gt":
        return lambda facts: type(v := facts.get(key)) in kinds and v > literal
    return lambda facts: type(v := facts.get(key)) in kinds and v >= literal


def _compared_key(condition: Condition) -> str | None:
    ((op, argument),) = condition.items()
    if op in COMPARE_OPS:
        return str(next(iter(argument)))
    return None if op.startswith("$") else op


def _all(tests: list[Test]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda facts: first(facts) and second(facts)
    if len(tests) == 3:
        first, second, third = tests
        return lambda facts: first(facts) and second(facts) and third(facts)
    head, rest = tests[0], _all(tests[1:])
    return lambda facts: head(facts) and rest(facts)


def compile_condition(condition: Condition) -> Test:
    """A normalised condition (``vocab.normalize``) as one closure."""
    ((op, argument),) = condition.items()
    if op == "$and":
        compared = {_compared_key(item) for item in argument}
        kept = [item for item in argument if not ("$ex" in item and next(iter(item["$ex"])) in compared)]
        return _all([compile_condition(item) for item in kept])
    if op == "$or":
        first = compile_condition(argument[0])
        rest = compile_condition({"$or": argument[1:]} if len(argument) > 2 else argument[1])
        return lambda facts: first(facts) or rest(facts)
    if op == "$ex":
        key = next(iter(argument))
        return lambda facts: key in facts
    if op == "$nex":
        key = next(iter(argument))
        return lambda facts: key not in facts
    if op in COMPARE_OPS:
        ((key, literal),) = argument.items()
        return _compare(op, key, literal)
    return _equals(op, argument)


def _required_intent(rule: Rule) -> str | None:
    for term in rule.condition["$and"]:
        if isinstance(term.get("intent"), str):
            return str(term["intent"])
    return None


class _Table:
    """Rules to try in ``pri`` order; past ``INDEX_MIN_RULES``, indexed on the intent each requires."""

    def __init__(self, rules: list[Rule]) -> None:
        entries = [(compile_condition(rule.condition), rule.index) for rule in rules]
        self.by_intent: dict[str, tuple[Entry, ...]] | None = None
        if len(rules) <= INDEX_MIN_RULES:
            self.any_intent = tuple(entries)
            return
        intents = [_required_intent(rule) for rule in rules]
        # An event whose intent no rule requires can only match the rules that require none.
        self.any_intent = tuple(e for e, i in zip(entries, intents, strict=True) if i is None)
        self.by_intent = {
            name: tuple(e for e, i in zip(entries, intents, strict=True) if i in (name, None))
            for name in {i for i in intents if i is not None}
        }

    def select(self, facts: Facts) -> int | None:
        entries = self.any_intent
        if self.by_intent is not None:
            intent = facts.get("intent")
            if type(intent) is str:
                entries = self.by_intent.get(intent, entries)
        for test, index in entries:
            if test(facts):
                return index
        return None


class PythonEvaluator:
    def __init__(self, ruleset: StateRuleset) -> None:
        self._input = _Table(list(ruleset.rules))
        self._other = _Table([rule for rule in ruleset.rules if rule.kind != "input"])

    def select(self, facts: Facts) -> int | None:
        return (self._input if facts.get("phase") == "input" else self._other).select(facts)

    def close(self) -> None:
        """Nothing to release: the closures go with the evaluator."""


class PythonBackend:
    name = "python"

    def load(self, ruleset: StateRuleset) -> PythonEvaluator:
        return PythonEvaluator(ruleset)

"""Expressions as rule conditions: what the rule vocabulary can say exactly, it says; the rest is Python.

A comparison of a plain path with a constant (``==  != < <= > >=``, on either side), combined with
``and``/``or``/``not``, becomes a comparison over a typed field, which is posted only when the value has
the literal's type, so the result is the strict one of ``evaluate.py``: a value of another type is
unequal and unordered. ``not`` is pushed down to the comparisons: ``not (x < 5)`` is "x is not a number,
or x >= 5". The vocabulary cannot order strings exactly (durable_rules compares their escaped JSON
text), so string ordering, like ``in``, ``matches``, functions, arithmetic and path-vs-path comparisons,
becomes a Python-evaluated fact, one per maximal such sub-expression.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from mcp_engine.expressions.evaluate import compile_expression, truthy
from mcp_engine.expressions.nodes import BoolOp, Compare, Name, Node, Not, path_of
from mcp_engine.expressions.parser import ExpressionError, parse
from mcp_engine.rulesets.vocab import (
    FALSE,
    TRUE,
    Condition,
    RulesetError,
    all_of,
    any_of,
    compare,
    differs,
    durable_number,
    equals,
    exists,
    missing,
)

if TYPE_CHECKING:
    from mcp_engine.contract import RuleContext

_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_COMPLEMENT = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_DURABLE = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def expression_condition(text: str, ctx: RuleContext) -> Condition:
    """The condition of expression ``text`` (parsed and compiled here, once)."""
    try:
        node = parse(text)
    except ExpressionError as exc:
        raise RulesetError(f"state '{ctx.state_name}': expression {text!r} does not parse: {exc}") from exc
    return _Pushdown(text, ctx).condition(node, negate=False)


def _reads_context(node: Node) -> bool:
    if isinstance(node, Name):
        return True
    for f in fields(node):
        value = getattr(node, f.name)
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, Node) and _reads_context(child):
                return True
    return False


class _Pushdown:
    def __init__(self, text: str, ctx: RuleContext) -> None:
        self.text = text
        self.ctx = ctx

    def condition(self, node: Node, negate: bool) -> Condition:
        if isinstance(node, Not):
            return self.condition(node.operand, not negate)
        if isinstance(node, BoolOp):
            parts = [self.condition(value, negate) for value in node.values]
            return all_of(*parts) if (node.op == "and") != negate else any_of(*parts)
        if not _reads_context(node):
            return TRUE if truthy(compile_expression(node)({})) != negate else FALSE
        if isinstance(node, Compare):
            pushed = self.comparison(node, negate)
            if pushed is not None:
                return pushed
        fn = compile_expression(Not(node.col, node) if negate else node)
        source = f"{'not ' if negate else ''}{self.text!r} at column {node.col}"
        return self.ctx.predicate(lambda namespace: truthy(fn(namespace)), source)

    def comparison(self, node: Compare, negate: bool) -> Condition | None:
        """``path op constant`` in the vocabulary, or None when it cannot be said exactly."""
        op: str = node.op
        if op not in _FLIPPED:
            return None
        path, other = path_of(node.left), node.right
        if path is None:
            path, other, op = path_of(node.right), node.left, _FLIPPED[op]
        if path is None or _reads_context(other):
            return None
        literal = compile_expression(other)({})
        if negate and op in ("==", "!="):
            op, negate = _COMPLEMENT[op], False
        if literal is None or isinstance(literal, bool):
            if op not in ("==", "!="):  # nothing is ordered against null or a boolean
                return FALSE if not negate else TRUE
            if literal is None:
                key = self.ctx.field(path, "any")
                return missing(key) if op == "==" else exists(key)
            key = self.ctx.field(path, "bool")
            return equals(key, literal) if op == "==" else differs(key, literal)
        if isinstance(literal, str) and op in ("==", "!="):
            key = self.ctx.field(path, "str")
            return equals(key, literal) if op == "==" else differs(key, literal)
        if not isinstance(literal, int | float) or (number := durable_number(literal)) is None:
            return None
        key = self.ctx.field(path, "num")
        if op in ("==", "!="):
            return equals(key, number) if op == "==" else differs(key, number)
        if not negate:
            return compare(_DURABLE[op], key, number)
        # not (x < 5): x is not a number (or NaN, which is not posted), or x >= 5.
        return any_of(missing(key), compare(_DURABLE[_COMPLEMENT[op]], key, number))

"""The expression AST -> nested closures, built once per expression, called on every turn.

Evaluation is strict and null-safe, because an expression runs inside a turn and must never fail it:
a missing name or key, a type mismatch or an out-of-range result is ``None`` (or False for a
comparison), never an exception. Types follow JSON: a bool is not a number, int and float compare
numerically, anything else is equal only to the same type.

Function results: ``len`` of a string, list or dict; ``lower``/``upper`` of a string; ``int`` of a
number (floats truncate) or an integer string; ``float`` of a number or a decimal string; ``str`` of
a scalar, where ``str(null)`` is ``""`` (as templates render a missing value) and booleans are
``"true"``/``"false"`` (as the language spells them); any other argument gives ``None``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from mcp_engine.expressions.nodes import (
    Arith,
    Attr,
    BoolOp,
    Call,
    Compare,
    Const,
    Index,
    ListOf,
    Name,
    Neg,
    Node,
    Not,
    path_of,
)
from mcp_engine.regexes import Regex, cached_regex, found_in
from mcp_engine.runtime import turnscope

Compiled = Callable[[Mapping[str, Any]], Any]

MAX_INT: Final = 2**63
MAX_SIZE: Final = 100_000  # longest string or list an operator may build
_INT_TEXT: Final = re.compile(r"\s*[+-]?[0-9]{1,30}\s*")
_FLOAT_TEXT: Final = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")
logger = logging.getLogger(__name__)


def compile_expression(node: Node) -> Compiled:
    """Compile ``node`` into ``f(namespace) -> value``. Unexpected errors (a bug, or data no JSON
    document holds) are logged and give ``None``: an expression never raises into a turn."""
    inner = _compile(node)

    def guarded(namespace: Mapping[str, Any]) -> Any:
        try:
            return inner(namespace)
        except turnscope.TurnOverrun:
            raise
        except Exception:
            logger.warning("expression at column %d failed unexpectedly", node.col, exc_info=True)
            return None

    return guarded


def evaluate(node: Node, namespace: Mapping[str, Any]) -> Any:
    """Compile and run once; for tests and one-off use (hot paths keep the compiled function)."""
    return compile_expression(node)(namespace)


def truthy(value: Any) -> bool:
    """Python truthiness on JSON values: null, false, 0, "", [] and {} are false."""
    try:
        return bool(value)
    except Exception:  # an odd object in the namespace must not fail the turn
        return False


def paths(node: Node) -> Iterator[tuple[str | int, ...]]:
    """Every dotted path the expression reads, left to right (``slots.size`` -> ("slots", "size"))."""
    path = path_of(node)
    if path is not None:
        yield path
        return
    for child in _children(node):
        yield from paths(child)


def _children(node: Node) -> tuple[Node, ...]:
    match node:
        case ListOf(items=items) | BoolOp(values=items) | Call(args=items):
            return items
        case Attr(obj=operand) | Index(obj=operand) | Not(operand=operand) | Neg(operand=operand):
            return (operand,)
        case Arith(left=left, right=right) | Compare(left=left, right=right):
            return (left, right)
    return ()


def _compile(node: Node) -> Compiled:
    """The unguarded closure; every helper below is total on JSON values."""
    match node:
        case Const(value=value):
            return lambda ns: value
        case Name(name=name):
            return lambda ns: ns.get(name)
        case Attr(obj=obj, key=key) | Index(obj=obj, key=key):
            read = _compile(obj)
            return lambda ns: _step(read(ns), key)
        case ListOf(items=items):
            parts = [_compile(item) for item in items]
            return lambda ns: [part(ns) for part in parts]
        case Not(operand=operand):
            inner = _compile(operand)
            return lambda ns: not truthy(inner(ns))
        case Neg(operand=operand):
            inner = _compile(operand)
            return lambda ns: _negate(inner(ns))
        case Arith(op=op, left=left, right=right):
            arith, lhs, rhs = _ARITH[op], _compile(left), _compile(right)
            return lambda ns: arith(lhs(ns), rhs(ns))
        case Compare(op="matches", left=left, right=Const(value=str(pattern))):
            compiled, lhs = cached_regex(pattern), _compile(left)
            return lambda ns: _search(compiled, lhs(ns))
        case Compare(op=op, left=left, right=right):
            compare, lhs, rhs = _COMPARE[op], _compile(left), _compile(right)
            return lambda ns: compare(lhs(ns), rhs(ns))
        case BoolOp(op=op, values=values):
            return _bool_op(op == "and", [_compile(value) for value in values])
        case Call(func=func, args=(arg,)):
            function, inner = _FUNCTIONS[func], _compile(arg)
            return lambda ns: function(inner(ns))
    raise ValueError(f"not an expression node: {node!r}")


def _bool_op(conjunction: bool, parts: list[Compiled]) -> Compiled:
    """``and`` stops at the first false part, ``or`` at the first true one (a loop: ``all`` over a
    generator costs three times as much per call)."""

    def run(ns: Mapping[str, Any]) -> bool:
        for part in parts:
            if truthy(part(ns)) is not conjunction:
                return not conjunction
        return conjunction

    return run


def _step(value: Any, key: str | int) -> Any:
    """One step of a path: a mapping key or a list position; never a Python attribute."""
    if type(value) is dict or isinstance(value, Mapping):  # the exact check first: it is 3x faster
        return value.get(key)
    if isinstance(value, list | tuple) and type(key) is int and -len(value) <= key < len(value):
        return value[key]
    return None


# -- comparisons ----------------------------------------------------------------------------------


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _eq(a: Any, b: Any) -> bool:
    if type(a) is type(b) and type(a) in _SCALARS:
        return bool(a == b)
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(_eq, a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _ordered(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (type(a) is str and type(b) is str)


def _contains(item: Any, container: Any) -> bool:
    if isinstance(container, list | tuple):
        return any(_eq(item, element) for element in container)
    if isinstance(container, str | Mapping):  # substring; or key, and JSON keys are strings
        return isinstance(item, str) and item in container
    return False


def _not_contains(item: Any, container: Any) -> bool:
    return isinstance(container, list | tuple | str | Mapping) and not _contains(item, container)


def _search(compiled: Regex | None, text: Any) -> bool:
    """RE2 searches in linear time (``mcp_engine.regexes``); the turn's budget is checked before each one,
    so an expression of many ``matches`` still ends when the turn's time is up."""
    if compiled is None or not isinstance(text, str):
        return False
    turnscope.check()
    return found_in(compiled, text)


def _matches(text: Any, pattern: Any) -> bool:
    return isinstance(pattern, str) and _search(cached_regex(pattern), text)


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": _eq,
    "!=": lambda a, b: not _eq(a, b),
    "<": lambda a, b: _ordered(a, b) and a < b,
    "<=": lambda a, b: _ordered(a, b) and a <= b,
    ">": lambda a, b: _ordered(a, b) and a > b,
    ">=": lambda a, b: _ordered(a, b) and a >= b,
    "in": _contains,
    "not in": _not_contains,
    "matches": _matches,
}

# -- arithmetic -----------------------------------------------------------------------------------


def _bounded(value: int | float) -> int | float | None:
    """Results stay JSON-sized: ints within ±2**63 and finite floats."""
    if isinstance(value, int):
        return value if -MAX_INT <= value <= MAX_INT else None
    return value if math.isfinite(value) else None


def _numeric(operation: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if not (_is_number(a) and _is_number(b)):
            return None
        try:
            return _bounded(operation(a, b))
        except ArithmeticError:  # division by zero; an int too large for a float
            return None

    return apply


_plus = _numeric(lambda a, b: a + b)


def _add(a: Any, b: Any) -> Any:
    """Numbers add; strings and lists concatenate, up to MAX_SIZE."""
    if type(a) is str and type(b) is str:
        return a + b if len(a) + len(b) <= MAX_SIZE else None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return [*a, *b] if len(a) + len(b) <= MAX_SIZE else None
    return _plus(a, b)


def _negate(value: Any) -> Any:
    return _bounded(-value) if _is_number(value) else None


_ARITH: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": _add,
    "-": _numeric(lambda a, b: a - b),
    "*": _numeric(lambda a, b: a * b),
    "/": _numeric(lambda a, b: a / b),
    "%": _numeric(lambda a, b: a % b),
}

# -- functions ------------------------------------------------------------------------------------


def _len(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | Mapping) else None


def _to_int(value: Any) -> int | None:
    """Floats truncate toward zero; strings must be written as integers ("42", not "4.2")."""
    if (type(value) is float and math.isfinite(value)) or type(value) is int or _is_text(_INT_TEXT, value):
        number = int(value)
        return number if -MAX_INT <= number <= MAX_INT else None
    return None


def _to_float(value: Any) -> float | None:
    if type(value) in (int, float) or _is_text(_FLOAT_TEXT, value):
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            return None
        return number if math.isfinite(number) else None
    return None


def _is_text(form: re.Pattern[str], value: Any) -> bool:
    return type(value) is str and form.fullmatch(value) is not None


def _to_str(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) in (int, float, str):
        return str(value)
    return None


_FUNCTIONS: Final[dict[str, Callable[[Any], Any]]] = {
    "len": _len,
    "lower": lambda value: value.lower() if type(value) is str else None,
    "upper": lambda value: value.upper() if type(value) is str else None,
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
}

"""The expression language is a sandbox: escapes fail at parse time, bombs are refused or bounded, and
no text or data makes parsing raise anything but ExpressionError or evaluation raise at all."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_engine.expressions.evaluate import _compile, compile_expression
from mcp_engine.expressions.nodes import FUNCTIONS, ROOT_NAMES, Node
from mcp_engine.expressions.parser import MAX_DEPTH, ExpressionError, parse

FAST = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(
    "text",
    [
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "slots.__class__",
        "slots._x",
        "slots.__dict__",
        "__import__('os')",
        "__builtins__",
        "lambda: 1",
        "[x for x in slots]",
        "{k: 1 for k in slots}",
        "(x for x in slots)",
        "f'{slots}'",
        "f'{().__class__}'",
        "(x := 1)",
        "import os",
        "exec('1')",
        "eval('1')",
        "open('f')",
        "getattr(slots, 'x')",
        "slots.get('x')",
        "slots.x.lower()",
        "type(1)",
        "len(slots, key=1)",
        "len(**slots)",
        "len(*slots)",
        "2 ** 8",
        "1 | 2",
        "1 & 2",
        "1 ^ 2",
        "1 << 2",
        "~1",
        "1 if slots.x else 2",
        "{'a': 1}",
        "{1}",
        "(1, 2)",
        "*slots",
        "b'x'",
        "slots is None",
        "slots[1:2]",
        "await slots",
        "yield",
        "slots.x; 1",
        "print(1)",
        "len.__call__",
        "globals()",
        "'{0.__class__}'.format(slots)",
        "'%s' % ()",
    ],
)
def test_escape_attempts_are_rejected_at_parse_time(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


def test_string_formatting_is_not_reachable() -> None:
    # `%` parses (it is modulo), but strings never format: only numbers take part in arithmetic
    assert compile_expression(parse("'%s' % 1"))({}) is None


@pytest.mark.parametrize(
    "text",
    [
        "10 ** 10 ** 10",
        "(" * 5000 + "1" + ")" * 4999,
        "(" * 10_000 + "1" + ")" * 10_000,
        "not " * 2499 + "slots.x",
        "not " * 10_000 + "slots.x",
        "-" * 9999 + "1",
        "[" * 60 + "]" * 60,
        "1" + " + 1" * 2400,
        "slots" + ".a" * 4000,
        "slots" + "[0]" * 3000,
        "len(" * 60 + "slots" + ")" * 60,
        "slots.x == '" + "a" * 1_000_000 + "'",
        "1" * 5000,
        "9" * 31,
        "slots.x == \ud800",
        "'\x00'",
    ],
)
def test_resource_bombs_are_refused(text: str) -> None:
    """Refused before any work grows with them (how fast: ``python -m benchmarks``, never asserted here)."""
    with pytest.raises(ExpressionError):
        parse(text)


@pytest.mark.parametrize(
    ("text", "namespace"),
    [
        ("'a' * 1000000000", {}),
        ("slots.s * 1000000000", {"slots": {"s": "a"}}),
        ("slots.l * 1000000000", {"slots": {"l": [1]}}),
        (" * ".join(["slots.x"] * 40), {"slots": {"x": 2**62}}),
        (" * ".join(["999999999999999999999999999999"] * 40), {}),
        ("slots.x * slots.x", {"slots": {"x": 10**4000}}),
        ("slots.x / 3", {"slots": {"x": 10**4000}}),
        ("float(slots.x)", {"slots": {"x": 10**4000}}),
        ("slots.s + slots.s", {"slots": {"s": "a" * 60_000}}),
        ("slots.l + slots.l", {"slots": {"l": [0] * 60_000}}),
    ],
)
def test_evaluation_bombs_are_bounded(text: str, namespace: dict[str, Any]) -> None:
    assert compile_expression(parse(text))(namespace) is None


def test_nesting_up_to_the_limit_is_allowed() -> None:
    depth = MAX_DEPTH - 1
    assert compile_expression(parse("(" * depth + "1" + ")" * depth))({}) == 1
    assert compile_expression(parse("not " * depth + "true"))({}) is (depth % 2 == 0)


# -- properties ------------------------------------------------------------------------------------

TOKENS = [
    *sorted(ROOT_NAMES), *sorted(FUNCTIONS), "true", "false", "null", "None", "and", "or", "not", "in",
    "matches", "is", "if", "else", "lambda", "for", "import", "==", "!=", "<", "<=", ">", ">=", "+", "-",
    "*", "/", "%", "**", "//", "&", "|", "~", ":=", ".", ",", ":", "(", ")", "[", "]", "{", "}", "'", '"',
    "'a'", '"b"', "f'", "0", "1", "-1", "1.5", "1e999", "9" * 40, "_", "__class__", "x", " ", "\n", "\\", "#",
]  # fmt: skip


token_soup = st.lists(st.sampled_from(TOKENS), max_size=30)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200) | token_soup.map(" ".join) | token_soup.map("".join))
def test_parse_of_any_text_raises_only_expression_error(text: str) -> None:
    with contextlib.suppress(ExpressionError):
        parse(text)


KEYS = ["a", "b", "size", "x"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from(KEYS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=10,
)
namespaces = st.dictionaries(st.sampled_from(sorted(ROOT_NAMES)), json_values, max_size=len(ROOT_NAMES))

literals = (
    st.integers(-(10**12), 10**12).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.text(max_size=5).map(repr)
    | st.sampled_from(["true", "false", "null", "None", "True", "[]"])
)
steps = st.sampled_from([".a", ".b", ".size", "[0]", "[-1]", "[2]", "['x']", '["a"]'])
data_paths = st.builds(
    lambda root, tail: root + "".join(tail), st.sampled_from(sorted(ROOT_NAMES)), st.lists(steps, max_size=3)
)
operators = st.sampled_from(
    ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "matches", "+", "-", "*", "/", "%", "and", "or"]
)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (
        st.builds(lambda a, op, b: f"({a} {op} {b})", inner, operators, inner)
        | st.builds(lambda op, a: f"({op}{a})", st.sampled_from(["not ", "-", "+"]), inner)
        | st.builds(lambda f, a: f"{f}({a})", st.sampled_from(sorted(FUNCTIONS)), inner)
        | st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
        | st.builds(lambda a, b, c: f"{a} < {b} <= {c}", inner, inner, inner)
    )


expressions = st.recursive(literals | data_paths, _compound, max_leaves=12)


@FAST
@given(expressions, namespaces)
def test_valid_expressions_never_raise_without_the_safety_net(text: str, namespace: dict[str, Any]) -> None:
    node: Node = parse(text)
    result = _compile(node)(namespace)  # the unguarded closure: its helpers must be total
    assert compile_expression(node)(namespace) == result or result != result  # NaN is not equal to itself


def test_catastrophic_regex_runs_on_the_linear_time_engine() -> None:
    """``^(a+)+$`` backtracks exponentially under Python's re; on RE2 it is one pass (issue 17)."""
    from mcp_engine.expressions.evaluate import evaluate
    from mcp_engine.expressions.parser import parse

    node = parse("event.text matches '^(a+)+$'")
    assert evaluate(node, {"event": {"text": "a" * 10_000 + "!"}}) is False
    assert evaluate(node, {"event": {"text": "a" * 10_000}}) is True


def test_constant_bad_pattern_is_a_parse_error_at_the_pattern() -> None:
    from mcp_engine.expressions.parser import ExpressionError, parse

    with pytest.raises(ExpressionError) as caught:
        parse("event.text matches '(unclosed'")
    assert caught.value.column == 20
    assert "bad regular expression" in caught.value.message

"""The expression language of SPEC §4: what parses to what, what evaluates to what, and where errors point."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest

from mcp_engine.expressions.evaluate import compile_expression, evaluate, paths, truthy
from mcp_engine.expressions.nodes import Attr, BoolOp, Compare, Const, Index, ListOf, Name, Neg, Not
from mcp_engine.expressions.parser import ExpressionError, parse

NAMESPACE: dict[str, Any] = {
    "slots": {
        "size": "large",
        "count": 2,
        "price": 9.5,
        "toppings": ["ham", "olives"],
        "flag": True,
        "empty": "",
        "nothing": None,
        "nested": {"a": {"b": 1}},
        "matches": "m",
        "pattern": "^l",
        "bad_pattern": "(",
        "numeric": " 42 ",
    },
    "variables": {"total": 0, "name": "Ann", "big": 2**62},
    "user_profile": {"tier": "gold"},
    "intent": {"name": "order", "confidence": 0.85},
    "event": {"type": "message", "text": "two large pizzas"},
    "integration_results": {"acct": {"balance": 120.5}},
    "context": {"error_count": 0, "previous_states": ["start", "menu"], "current_state": "order"},
    "slot_filling": {"exhausted": False},
}


def run(text: str) -> Any:
    return evaluate(parse(text), NAMESPACE)


def same(actual: Any, expected: Any) -> bool:
    """Equal and of the same type, so that True is not 1 and 2.0 is not 2."""
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals, JSON and Python spellings
        ("null", None),
        ("None", None),
        ("true", True),
        ("False", False),
        ("42", 42),
        ("-1.5", -1.5),
        ("'hi'", "hi"),
        ("[1, 'a', null]", [1, "a", None]),
        # names and paths; whatever is missing is null
        ("slots.size", "large"),
        ("slots['size']", "large"),
        ("slots.nested.a.b", 1),
        ("context.previous_states[-1]", "menu"),
        ("context.previous_states[0]", "start"),
        ("context.previous_states[2]", None),
        ("context.previous_states.x", None),
        ("slots.size[0]", None),
        ("slots.missing", None),
        ("slots.missing.deeper[3]", None),
        ("slots[0]", None),
        ("slots.matches", "m"),
        ("intent.confidence", 0.85),
        ("slot_filling.exhausted", False),
        # equality: bool is not a number, int and float compare numerically, else same type
        ("1 == 1.0", True),
        ("true == 1", False),
        ("false == 0", False),
        ("'1' == 1", False),
        ("null == null", True),
        ("slots.nothing == null", True),
        ("slots.missing == null", True),
        ("slots.empty == null", False),
        ("[1, 2] == [1.0, 2]", True),
        ("[true] == [1]", False),
        ("slots.nested == slots.nested", True),
        ("1 != true", True),
        ("slots.size != 'large'", False),
        # ordering: numbers with numbers, strings with strings, anything else False
        ("1 < 2.5", True),
        ("slots.count >= 2", True),
        ("'a' < 'b'", True),
        ("'2' < 3", False),
        ("null < 1", False),
        ("null >= null", False),
        ("true > false", False),
        ("[1] < [2]", False),
        ("1 < slots.count < 3", True),
        ("1 < slots.count < 2", False),
        ("0 <= slots.missing < 3", False),
        # in / not in
        ("'ham' in slots.toppings", True),
        ("'ha' in slots.toppings", False),
        ("1 in [1.0]", True),
        ("1 in [true]", False),
        ("'ar' in slots.size", True),
        ("1 in 'a1'", False),
        ("'a' in slots.nested", True),
        ("'b' in slots.nested", False),
        ("'a' in 5", False),
        ("'a' in slots.missing", False),
        ("'x' not in slots.toppings", True),
        ("'ham' not in slots.toppings", False),
        ("1 not in 'abc'", True),
        ("'a' not in 5", False),
        ("'a' not in slots.missing", False),
        # matches: a regex search, strings only; a bad pattern read at run time never matches
        ("slots.size matches '^la'", True),
        ("slots.size matches 'rg'", True),
        ("slots.size matches '^rg'", False),
        ("event.text matches '\\\\d'", False),
        ("slots.size matches slots.pattern", True),
        ("slots.size matches slots.bad_pattern", False),
        ("slots.size matches slots.missing", False),
        ("slots.count matches '2'", False),
        ("not (slots.size matches 'x')", True),
        # arithmetic: numbers only, plus str+str and list+list; anything else is null
        ("1 + 2", 3),
        ("1 + 2.5", 3.5),
        ("7 - 10", -3),
        ("3 * 4", 12),
        ("7 / 2", 3.5),
        ("6 / 3", 2.0),
        ("7 % 3", 1),
        ("-7 % 3", 2),
        ("1 / 0", None),
        ("1 % 0", None),
        ("1.5 / 0.0", None),
        ("'a' + 'b'", "ab"),
        ("slots.toppings + ['x']", ["ham", "olives", "x"]),
        ("'a' + 1", None),
        ("'a' * 3", None),
        ("[1] * 2", None),
        ("true + 1", None),
        ("slots.missing + 1", None),
        ("variables.big * 2", 2**63),
        ("variables.big * 3", None),
        ("-variables.big * 3", None),
        ("1e308 * 10", None),
        ("-slots.count", -2),
        ("-slots.size", None),
        ("-true", None),
        ("+slots.count", 2),
        ("+slots.size", None),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        # and / or / not: truthiness in, booleans out
        ("slots.size and slots.count", True),
        ("slots.empty or slots.nothing", False),
        ("slots.empty or slots.count", True),
        ("not slots.missing", True),
        ("not slots.toppings", False),
        ("not []", True),
        ("intent.name == 'order' and intent.confidence >= 0.7", True),
        ("slot_filling.exhausted or context.error_count > 2", False),
        # functions
        ("len(slots.toppings)", 2),
        ("len(slots.size)", 5),
        ("len(slots.nested)", 1),
        ("len(slots.count)", None),
        ("len(slots.missing)", None),
        ("lower('AbC')", "abc"),
        ("upper(slots.size)", "LARGE"),
        ("lower(1)", None),
        ("int(slots.price)", 9),
        ("int(-2.7)", -2),
        ("int(slots.numeric)", 42),
        ("int('4.2')", None),
        ("int('1_000')", None),
        ("int('abc')", None),
        ("int(true)", None),
        ("int(null)", None),
        ("int(1e300)", None),
        ("float(2)", 2.0),
        ("float(' 4.25 ')", 4.25),
        ("float('1e3')", 1000.0),
        ("float('inf')", None),
        ("float('nan')", None),
        ("float('1e999')", None),
        ("float(false)", None),
        ("float([1])", None),
        ("str(null)", ""),
        ("str(true)", "true"),
        ("str(false)", "false"),
        ("str(12)", "12"),
        ("str(1.5)", "1.5"),
        ("str('x')", "x"),
        ("str(slots.toppings)", None),
        ("'Hi ' + str(variables.name) + str(slots.missing)", "Hi Ann"),
        ("len(slots.toppings) == 2 and lower(slots.size) in ['large', 'xl']", True),
    ],
)
def test_semantics(text: str, expected: Any) -> None:
    assert same(run(text), expected), run(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slots.size", Attr(1, Name(1, "slots"), "size")),
        ('slots["size"]', Index(1, Name(1, "slots"), "size")),
        ("context.previous_states[-1]", Index(1, Attr(1, Name(1, "context"), "previous_states"), -1)),
        ("-1", Const(1, -1)),
        ("- 2.5", Const(1, -2.5)),
        ("+slots.x", Neg(1, Neg(1, Attr(2, Name(2, "slots"), "x")))),
        ("not null", Not(1, Const(5, None))),
        (
            "1 < slots.x <= 3",
            BoolOp(
                1,
                "and",
                (
                    Compare(1, "<", Const(1, 1), Attr(5, Name(5, "slots"), "x")),
                    Compare(5, "<=", Attr(5, Name(5, "slots"), "x"), Const(16, 3)),
                ),
            ),
        ),
        ("slots.x matches 'a'", Compare(1, "matches", Attr(1, Name(1, "slots"), "x"), Const(17, "a"))),
        ("slots.x not in []", Compare(1, "not in", Attr(1, Name(1, "slots"), "x"), ListOf(16, ()))),
    ],
)
def test_tree_shapes(text: str, expected: Any) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "  slots.x",
        "slots.x\n  and slots.y",
        "(slots.x\r\n or slots.y)",
        "slots.x  # a comment",
        "slots.x matches '\\d+'",
        "slots.x matches r'\\d+'",
        "'a' 'b' == 'ab'",
        "len((slots.x))",
        "[]",
        "[1, 2,]",
    ],
)
def test_accepted_spellings(text: str) -> None:
    parse(text)


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("slots.x == foo", 12, "unknown name 'foo' (known: context, event, integration_results,"),
        ("slots.x == 'é' and foo", 20, "unknown name 'foo'"),
        ("slots.x and\n  foo", 15, "unknown name 'foo'"),
        ("slots.__class__", 7, "names starting with '_'"),
        ("slots.a._private", 9, "names starting with '_'"),
        ("().__class__", 4, "names starting with '_'"),
        ("(slots.x + 1) ** 2", 15, "operator '**'"),
        ("slots.x & 1", 9, "operator '&'"),
        ("~slots.x", 1, "operator '~'"),
        ("1 + 2 // 3", 7, "operator '//'"),
        ("len(slots.x, 1)", 1, "len() takes 1 argument, got 2"),
        ("upper()", 1, "upper() takes 1 argument, got 0"),
        ("len(x=slots.y)", 5, "keyword arguments"),
        ("slots.x.get('y')", 1, "only the functions float, int, len, lower, str, upper can be called"),
        ("1 + open('f')", 5, "unknown function 'open'"),
        ("len", 1, "'len' is a function"),
        ("slots.x is null", 9, "'is' is not supported"),
        ("slots.x matches not 'a'", 1, "'matches not' is not supported"),
        ("slots[slots.k]", 7, "an index must be a constant"),
        ("slots[true]", 7, "an index must be a constant"),
        ("slots[1.5]", 7, "an index must be a constant"),
        ("'abc'.x", 1, "only names and their fields"),
        ("len(slots.x).y", 1, "only names and their fields"),
        ("1 + (2", 5, "'(' was never closed"),
        ("slots.x)", 8, "unmatched ')'"),
        ("[1)", 3, "unmatched ')'"),
        ("1 +", 4, "invalid syntax"),
        ("", 1, "empty expression"),
        ("   ", 1, "empty expression"),
        ("1 if 2 else 3", 1, "conditional expressions"),
        ("1, 2", 1, "tuples"),
        ("123456789012345678901234567890123", 1, "more than 30 digits"),
        ("1e400", 1, "number literal out of range"),
        ("slots.x == 1j", 12, "complex numbers"),
        ("event.text matches '[a-'", 20, "bad regular expression"),
    ],
)
def test_error_columns(text: str, column: int, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.column == column, caught.value
    assert message in caught.value.message
    assert str(caught.value) == f"column {column}: {caught.value.message}"


def test_error_is_a_value_error_that_survives_pickling() -> None:
    error = ExpressionError("unknown name 'foo'", 7)
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.column, str(copy)) == ("unknown name 'foo'", 7, "column 7: unknown name 'foo'")
    assert str(ExpressionError("too long")) == "too long"


def test_parse_is_cached() -> None:
    assert parse("slots.size == 'cached'") is parse("slots.size == 'cached'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", []),
        ("slots.size == 'large'", [("slots", "size")]),
        ("slots['a'][0].b", [("slots", "a", 0, "b")]),
        ("slots", [("slots",)]),
        (
            "len(context.previous_states) > 1 and intent.name in [variables.a, 'x'] or not -slots.n",
            [("context", "previous_states"), ("intent", "name"), ("variables", "a"), ("slots", "n")],
        ),
        ("slots.a + slots.a", [("slots", "a"), ("slots", "a")]),
    ],
)
def test_paths(text: str, expected: list[tuple[str | int, ...]]) -> None:
    assert list(paths(parse(text))) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(None, False), (False, False), (0, False), (0.0, False), ("", False), ([], False), ({}, False)],
        *[(True, True), (1, True), ("0", True), ([0], True), ({"a": None}, True)],
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


def test_compiled_expression_is_reusable_across_namespaces() -> None:
    check = compile_expression(parse("intent.name == 'order' and slots.count > 1"))
    assert check(NAMESPACE) is True
    assert check({"intent": {"name": "order"}, "slots": {"count": 1}}) is False
    assert check({}) is False


class _ExplodingNamespace(dict[str, Any]):
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("boom")


def test_unexpected_errors_become_null_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    check = compile_expression(parse("slots.x == 1"))
    with caplog.at_level(logging.WARNING, logger="mcp_engine.expressions.evaluate"):
        assert check(_ExplodingNamespace()) is None
    assert "failed unexpectedly" in caplog.text


def test_deeply_nested_data_cannot_escape() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert evaluate(parse("slots.a == slots.a"), {"slots": {"a": deep}}) is None

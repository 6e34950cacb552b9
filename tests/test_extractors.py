"""Each rule kind's ``extract``: what it finds in an utterance, where, and whether it is valid."""

import datetime as dt
from typing import Any

import pytest

from mcp_engine import ExtractContext, RuleKind
from mcp_engine.plugins.extractors.rules import BUILTIN_RULES

KINDS: dict[str, type[RuleKind]] = {kind.name: kind for kind in BUILTIN_RULES}
# 23:00 on Monday 9 March 2026 in New York is already Tuesday in UTC: dates must follow the conversation.
CTX = ExtractContext(timezone="America/New_York", now=dt.datetime(2026, 3, 10, 3, 0, tzinfo=dt.UTC))


def values(rule: str, text: str) -> list[Any]:
    kind_name, colon, argument = rule.partition(":")
    kind = KINDS[kind_name]
    return [f.value for f in kind.extract(text, kind.parse(argument if colon else None), CTX) if f.valid]


def invalid(rule: str, text: str) -> list[tuple[Any, str]]:
    kind_name, colon, argument = rule.partition(":")
    kind = KINDS[kind_name]
    found = kind.extract(text, kind.parse(argument if colon else None), CTX)
    return [(f.value, f.reason) for f in found if not f.valid]


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        ("int", "2", [2]),
        ("int", "I'd like two large pizzas", [2]),
        ("int", "twenty five", [25]),
        ("int", "twenty-five please", [25]),
        ("int", "one hundred and five", [105]),
        ("int", "a dozen", [12]),
        ("int", "two dozen", [24]),
        ("int", "one thousand two hundred and thirty four", [1234]),
        ("int", "-3 degrees", [-3]),
        ("int", "1,000 of them", [1000]),
        ("int", "3 medium and 4 small", [3, 4]),
        ("int", "one two", [1, 2]),
        ("int", "a large one", []),
        ("int", "just one please", [1]),
        ("int", "the 2nd of May", []),
        ("int", "someone", []),
        ("number", "12.5", [12.5]),
        ("number", "about 7", [7]),
        ("number", "ninety nine", [99]),
        ("number:0..100", "50.5 percent", [50.5]),
        ("enum:small,medium,large=big|huge", "two BIG pizzas", ["large"]),
        ("enum:small,medium,large=big|huge", "Large", ["large"]),
        ("enum:small,medium,large=big|huge", "largely", []),
        ("enum:small,medium,large=big|huge", "a small and a huge one", ["small", "large"]),
        ("enum:thin,classic=regular|normal,stuffed", "normal crust", ["classic"]),
        ("enum:xl=extra large,large", "Extra  Large please", ["xl"]),
        ("email", "it's John.Doe@Example.COM.", ["John.Doe@example.com"]),
        ("email", "<a@b.co>, c@d.org", ["a@b.co", "c@d.org"]),
        ("email", "me at gmail", []),
        ("phone", "call me on (212) 555-0199", ["+12125550199"]),
        ("phone", "2125550199", ["+12125550199"]),
        ("phone", "+44 20 7946 0958", ["+442079460958"]),
        ("phone:GB", "020 7946 0958", ["+442079460958"]),
        ("phone", "two large pizzas", []),
        ("date", "tomorrow please", ["2026-03-10"]),
        ("date", "today", ["2026-03-09"]),
        ("date", "next friday", ["2026-03-13"]),
        ("date", "on 3 March", ["2027-03-03"]),
        ("date", "march 20th", ["2026-03-20"]),
        ("date", "2026-12-01", ["2026-12-01"]),
        ("date", "two large pizzas", []),
        ("date", "may I order", []),
        ("date", "call 555 123 4567", []),
        ("bool", "yes please", [True]),
        ("bool", "Yeah sure", [True, True]),
        ("bool", "ok", [True]),
        ("bool", "nope", [False]),
        ("bool", "that's not right", [False]),
        ("bool", "nah", [False]),
        ("bool", "yesterday", []),
        ("regex:^[0-9]{8}$", "12345678", ["12345678"]),
        ("regex:^[0-9]{8}$", "1234567", []),
        ("regex:order ([A-Z]{2}\\d+)", "order AB12 and order CD3", ["AB12", "CD3"]),
        ("regex:[A-Z]{2}\\d{4}", "it is XY1234", ["XY1234"]),
        ("text", "anything at all", []),
    ],
)
def test_valid_values(rule: str, text: str, expected: list[Any]) -> None:
    assert values(rule, text) == expected


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        ("int:1..20", "30 pizzas", [(30, "30 is not between 1 and 20")]),
        ("int:1..20", "zero", [(0, "0 is not between 1 and 20")]),
        ("int:1..", "-2", [(-2, "-2 is below 1")]),
        ("int:..10", "eleven", [(11, "11 is above 10")]),
        ("int", "12.5", [(12.5, "12.5 is not a whole number")]),
        ("number:0..1", "1.5", [(1.5, "1.5 is not between 0.0 and 1.0")]),
        ("phone", "555 123 4567", [("+15551234567", "555 123 4567 is not a valid phone number")]),
        ("phone", "+49 1234", [("+491234", "+49 1234 is not a valid phone number")]),  # the fewest digits
    ],
)
def test_invalid_values_carry_a_reason(rule: str, text: str, expected: list[tuple[Any, str]]) -> None:
    assert invalid(rule, text) == expected


def test_bad_email_is_found_invalid_with_validators_reason() -> None:
    [(value, reason)] = invalid("email", "write to x@y")
    assert value == "x@y"
    assert "period" in reason


def test_spans_point_at_the_value() -> None:
    text = "I'd like two large pizzas"
    [count] = KINDS["int"].extract(text, None, CTX)
    [size] = KINDS["enum"].extract(text, KINDS["enum"].parse("small,large"), CTX)
    assert text[count.start : count.end] == "two"
    assert text[size.start : size.end] == "large"


def test_dates_follow_the_conversation_timezone() -> None:
    utc = ExtractContext(timezone="UTC", now=CTX.now)
    assert KINDS["date"].extract("today", None, utc)[0].value == "2026-03-10"
    assert KINDS["date"].extract("today", None, CTX)[0].value == "2026-03-09"


def test_phone_numbers_need_their_fewest_digits() -> None:
    """The digit count that lets a text skip the matcher is the fewest any possible number has: four
    written with a country code ("+49 1234"), a region's own shortest otherwise."""
    assert KINDS["phone"].parse(None) == ("US", 4)
    assert KINDS["phone"].parse("gb") == ("GB", 4)
    us = KINDS["phone"].parse(None)
    assert KINDS["phone"].extract("12 Main Street, flat 3", us, CTX) == []
    assert [f.value for f in KINDS["phone"].extract("+49 1234", us, CTX)] == ["+491234"]


def test_phone_region_must_exist() -> None:
    with pytest.raises(ValueError, match="region"):
        KINDS["phone"].parse("XX")

"""Slot validation rule kinds (SPEC §3): parsing the rule strings; extraction comes with the runtime."""

import re
from typing import Any

from mcp_engine import RuleKind, hookimpl

_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)?\s*\.\.\s*(-?\d+(?:\.\d+)?)?\s*$")


def _parse_range(argument: str | None, number: type[int] | type[float]) -> tuple[Any, Any] | None:
    if not argument:
        return None
    match = _RANGE.match(argument)
    if not match or (match.group(1) is None and match.group(2) is None):
        raise ValueError(f"'{argument}' is not a range: write MIN..MAX, e.g. 1..10")
    try:
        low, high = (number(g) if g is not None else None for g in match.groups())
    except ValueError as exc:
        raise ValueError(
            f"'{argument}': bounds must be {'whole numbers' if number is int else 'numbers'}"
        ) from exc
    if low is not None and high is not None and low > high:
        raise ValueError(f"minimum {low} is above maximum {high}")
    return low, high


class TextRule(RuleKind):
    name = "text"


class IntRule(RuleKind):
    name = "int"

    @classmethod
    def parse(cls, argument: str | None) -> tuple[int | None, int | None] | None:
        return _parse_range(argument, int)


class NumberRule(RuleKind):
    name = "number"

    @classmethod
    def parse(cls, argument: str | None) -> tuple[float | None, float | None] | None:
        return _parse_range(argument, float)


class EnumRule(RuleKind):
    """``enum:a,b,c``; synonyms as ``enum:large=big|huge,small``; case-insensitive."""

    name = "enum"

    @classmethod
    def parse(cls, argument: str | None) -> dict[str, str]:
        if not argument:
            raise ValueError("enum needs its values, e.g. enum:small,medium,large")
        words: dict[str, str] = {}
        for item in argument.split(","):
            value, _, synonyms = item.partition("=")
            value = value.strip()
            if not value:
                raise ValueError(f"empty value in 'enum:{argument}'")
            for word in [value, *synonyms.split("|")] if synonyms else [value]:
                word = word.strip().lower()
                if not word:
                    raise ValueError(f"empty synonym for '{value}'")
                if word in words and words[word] != value:
                    raise ValueError(f"'{word}' stands for both '{words[word]}' and '{value}'")
                words[word] = value
        return words


class EmailRule(RuleKind):
    name = "email"


class PhoneRule(RuleKind):
    name = "phone"


class DateRule(RuleKind):
    name = "date"


class BoolRule(RuleKind):
    name = "bool"


class RegexRule(RuleKind):
    name = "regex"

    @classmethod
    def parse(cls, argument: str | None) -> re.Pattern[str]:
        if not argument:
            raise ValueError("regex needs a pattern, e.g. regex:^[A-Z]{2}\\d{4}$")
        try:
            return re.compile(argument)
        except re.error as exc:
            raise ValueError(f"bad regular expression '{argument}': {exc}") from exc


BUILTIN_RULES: tuple[type[RuleKind], ...] = (
    TextRule,
    IntRule,
    NumberRule,
    EnumRule,
    EmailRule,
    PhoneRule,
    DateRule,
    BoolRule,
    RegexRule,
)


@hookimpl
def mcp_engine_rule_kinds() -> list[type[RuleKind]]:
    return [*BUILTIN_RULES]

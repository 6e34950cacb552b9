"""Slot validation rule kinds (SPEC §3): parsing rule strings once per flow, extracting values per turn.

``extract`` finds every value of a kind in an utterance with its span, so that slot filling can fill
several slots from one message and keep two slots from claiming the same words. A value that is there
but breaks the rule (30 for ``int:1..20``) is still reported, as invalid, so the user can be told why.
"""

import datetime as dt
import re
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from dateparser.search import search_dates
from email_validator import EmailNotValidError, validate_email

from mcp_engine import ExtractContext, Found, PatternError, Regex, RuleKind, compile_regex, hookimpl

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


def _check_range(found: Found, bounds: tuple[Any, Any] | None) -> Found:
    if bounds is None:
        return found
    low, high = bounds
    if (low is not None and found.value < low) or (high is not None and found.value > high):
        if low is not None and high is not None:
            reason = f"{found.value} is not between {low} and {high}"
        else:
            reason = f"{found.value} is below {low}" if low is not None else f"{found.value} is above {high}"
        return Found(found.value, found.start, found.end, valid=False, reason=reason)
    return found


_DIGITS = re.compile(r"(?<![\w.,-])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w-]|[.,]\d)")
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORDS: dict[str, tuple[str, int]] = {
    **{w: ("unit", i) for i, w in enumerate(_UNITS)},
    **{w: ("teen", 10 + i) for i, w in enumerate(_TEENS)},
    **{w: ("tens", 20 + 10 * i) for i, w in enumerate(_TENS)},
    "hundred": ("hundred", 100),
    "dozen": ("dozen", 12),
    "thousand": ("scale", 1000),
    "million": ("scale", 1_000_000),
}
_TOKEN = re.compile(r"[a-z]+")
_JOINER = re.compile(r"[\s-]+")
_AND_JOINER = re.compile(r"\s+and\s+")


def _word_numbers(text: str) -> list[tuple[int, int, int]]:
    """English number words as ``(value, start, end)``: "twenty-five", "a dozen", "one hundred and five".

    A small state machine over word tokens: a word that cannot continue the number so far ("two three")
    starts a new one, and "a" counts only before hundred/thousand/million/dozen.
    """
    found: list[tuple[int, int, int]] = []
    total = current = 0
    start = end = -1
    last = ""

    def close() -> None:
        nonlocal total, current, start, last
        if start >= 0 and last != "a":
            found.append((total + current, start, end))
        total = current = 0
        start, last = -1, ""

    for token in _TOKEN.finditer(text.lower()):
        word = token.group()
        if word == "and" and last in ("hundred", "scale"):
            continue  # "one hundred and five": the gap check below lets the number go on past it
        if start >= 0:
            gap = text[end : token.start()]  # a single space always joins: no regex for the usual case
            joined = _AND_JOINER if last in ("hundred", "scale") else _JOINER
            if gap != " " and not (_JOINER.fullmatch(gap) or joined.fullmatch(gap)):
                close()
        kind, value = _WORDS.get(word, ("a", 1) if word == "a" else ("", 0))
        if start >= 0 and not _fits(kind, current, last):
            close()
        if not kind or (kind in ("hundred", "dozen", "scale") and start < 0):
            continue
        if start < 0:
            start = token.start()
        if kind in ("unit", "teen", "tens"):
            current += value
        elif kind in ("hundred", "dozen"):
            current *= value
        elif kind == "scale":
            total, current = total + current * value, 0
        else:  # "a": one of what follows
            current = 1
        end, last = token.end(), kind
    close()
    return found


def _fits(kind: str, current: int, last: str) -> bool:
    """Whether a number word of ``kind`` can go on the number so far (``current``, its ``last`` kind)."""
    if kind == "unit":
        return (current % 100 == 0 and last != "unit") or last == "tens"
    if kind == "teen":
        return current % 100 == 0 and last not in ("unit", "teen")
    if kind == "tens":
        return current % 100 == 0 and last not in ("unit", "teen", "tens")
    if kind == "hundred":
        return last in ("a", "unit", "teen", "tens") and current < 100
    if kind == "dozen":
        return last in ("a", "unit", "teen", "tens")
    if kind == "scale":
        return last in ("a", "unit", "teen", "tens", "hundred", "dozen")
    return False


_PRONOUN_ONE = re.compile(
    r"\b(?:a|an|the|this|that|which|another|each|every)\s+(?:\w+\s+)?one$", re.IGNORECASE
)


def _numbers(text: str) -> list[Found]:
    """Digits and number words, in text order; values are ints when whole so they render as written.

    A lone "one" after a determiner ("a large one", "the other one") is a pronoun, not a quantity.
    """
    found = [
        Found(n, s, e)
        for n, s, e in _word_numbers(text)
        if text[s:e].lower() != "one" or not _PRONOUN_ONE.search(text[:e])
    ]
    for match in _DIGITS.finditer(text):
        value = float(match.group().replace(",", ""))
        found.append(Found(int(value) if value.is_integer() else value, match.start(), match.end()))
    return sorted(found, key=lambda f: f.start)


class TextRule(RuleKind):
    """Free text: never found inside a sentence, only taken as the whole answer to its prompt."""

    name = "text"


class IntRule(RuleKind):
    name = "int"

    @classmethod
    def parse(cls, argument: str | None) -> tuple[int | None, int | None] | None:
        return _parse_range(argument, int)

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        return [
            _check_range(f, rule)
            if isinstance(f.value, int)
            else Found(f.value, f.start, f.end, valid=False, reason=f"{f.value} is not a whole number")
            for f in _numbers(text)
        ]


class NumberRule(RuleKind):
    name = "number"

    @classmethod
    def parse(cls, argument: str | None) -> tuple[float | None, float | None] | None:
        return _parse_range(argument, float)

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        return [_check_range(f, rule) for f in _numbers(text)]


class EnumRule(RuleKind):
    """``enum:a,b,c``; synonyms as ``enum:large=big|huge,small``; case-insensitive."""

    name = "enum"

    @classmethod
    def parse(cls, argument: str | None) -> dict[str, str]:
        if not argument:
            raise ValueError("enum needs its values, e.g. enum:small,medium,large")
        words: dict[str, str] = {}
        for item in argument.split(","):
            value, equals, synonyms = item.partition("=")
            value = value.strip()
            if not value:
                raise ValueError(f"empty value in 'enum:{argument}'")
            if "|" in value or "=" in synonyms:
                raise ValueError(f"'{item.strip()}': write a value and its synonyms as large=big|huge")
            for word in [value, *synonyms.split("|")] if equals else [value]:
                word = word.strip().lower()
                if not word:
                    raise ValueError(f"empty synonym for '{value}'")
                if word in words and words[word] != value:
                    raise ValueError(f"'{word}' stands for both '{words[word]}' and '{value}'")
                words[word] = value
        return words

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        return [
            Found(rule[" ".join(m.group().lower().split())], m.start(), m.end())
            for m in _enum_pattern(tuple(rule)).finditer(text)
        ]


@lru_cache(maxsize=1024)
def _enum_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """One whole-word alternation per enum, longest first so "extra large" wins over "large"."""
    alternatives = (r"\s+".join(map(re.escape, w.split())) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


# Loose on purpose: anything around an "@" is a candidate, so a mistyped address gets a precise reason.
_EMAIL = re.compile(r"[^\s@<>(),;:\"]+@[^\s@<>(),;:\"]+")


class EmailRule(RuleKind):
    name = "email"

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        found = []
        for match in _EMAIL.finditer(text):
            candidate = match.group().rstrip(".!?'")
            end = match.start() + len(candidate)
            try:
                email = validate_email(candidate, check_deliverability=False).normalized
            except EmailNotValidError as exc:
                found.append(Found(candidate, match.start(), end, valid=False, reason=str(exc)))
            else:
                found.append(Found(email, match.start(), end))
        return found


_DIGIT = re.compile(r"\d")


def _fewest_digits(metadata: Any) -> int:
    """The fewest digits a possible national number of a region has (local-only numbers included)."""
    desc = metadata.general_desc
    lengths = [n for n in (*desc.possible_length, *desc.possible_length_local_only) if n > 0]
    return min(lengths, default=1)


# The fewest digits any possible number written with its country code has ("+49 12": 4).
_FEWEST_INTERNATIONAL = min(
    len(str(metadata.country_code)) + _fewest_digits(metadata)
    for metadata in map(phonenumbers.PhoneMetadata.metadata_for_region, phonenumbers.SUPPORTED_REGIONS)
    if metadata is not None
)


class PhoneRule(RuleKind):
    """``phone`` (numbers without a country code are read as US) or ``phone:GB`` for another region."""

    name = "phone"

    @classmethod
    def parse(cls, argument: str | None) -> tuple[str, int]:
        """The region, and the fewest digits a text needs to hold a possible number of it: a text with
        fewer ("12 Main Street") is answered without the matcher, which took 60 µs to find nothing there."""
        region = (argument or "US").strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{argument}' is not a region code, e.g. phone:US or phone:GB")
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        return region, min(_fewest_digits(metadata), _FEWEST_INTERNATIONAL)

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        """Numbers that could be phone numbers; those that cannot exist (no such area code) are invalid."""
        region, fewest = rule if rule is not None else cls.parse(None)
        if len(_DIGIT.findall(text)) < fewest:
            return []
        found = []
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            valid = phonenumbers.is_valid_number(match.number)
            reason = "" if valid else f"{match.raw_string} is not a valid phone number"
            found.append(Found(e164, match.start, match.end, valid=valid, reason=reason))
        return found


# What dateparser may only take as a date when the text has one of these: alone it reads "4567" as a
# year and "may" (the verb) as a month.
_DATE_EVIDENCE = re.compile(
    r"\b(?:today|tonight|tomorrow|yesterday|days?|weeks?|weekend|months?|years?"
    r"|mon(?:day)?|tues?(?:day)?|wed(?:nesday)?|thu(?:rs)?(?:day)?|fri(?:day)?|saturday|sunday"
    r"|jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b"
    r"|\d{4}-\d{1,2}-\d{1,2}|\b\d{1,2}[/.]\d{1,2}(?:[/.]\d{2,4})?\b|\bmay\s+\d|\d(?:st|nd|rd|th)?\s+(?:of\s+)?may\b",
    re.IGNORECASE,
)


class DateRule(RuleKind):
    """Natural dates resolved in the conversation's timezone, as ISO dates (YYYY-MM-DD)."""

    name = "date"

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        if not _DATE_EVIDENCE.search(text):
            return []  # spares dateparser's search on most utterances
        local_now = ctx.now.astimezone(ZoneInfo(ctx.timezone)) if ctx.now.tzinfo else ctx.now
        settings = {
            "RELATIVE_BASE": local_now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "future",
            "RETURN_AS_TIMEZONE_AWARE": False,
        }
        found: list[Found] = []
        cursor = 0
        for phrase, when in search_dates(text, languages=["en"], settings=settings) or []:
            start = text.find(phrase, cursor)
            if start < 0:
                continue
            cursor = start + len(phrase)
            if _DATE_EVIDENCE.search(phrase) and isinstance(when, dt.datetime):
                found.append(Found(when.date().isoformat(), start, cursor))
        return found


_YES = r"yes|yeah|yep|yup|sure|ok|okay|correct|right|affirmative|absolutely|definitely|of\s+course|true"
_NO = r"no|nope|nah|negative|wrong|false|never|not\s+really"
_BOOL = re.compile(rf"(?<!\w)(?:(not\s+)?(?:{_YES})|({_NO}))(?!\w)", re.IGNORECASE)


class BoolRule(RuleKind):
    """Yes/no words; "not right", "not sure" count as no."""

    name = "bool"

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        return [Found(not (m.group(1) or m.group(2)), m.start(), m.end()) for m in _BOOL.finditer(text)]


class RegexRule(RuleKind):
    name = "regex"

    @classmethod
    def parse(cls, argument: str | None) -> Regex:
        """Compiled on RE2 (linear time) when the flow is compiled; a pattern it cannot run is refused."""
        if not argument:
            raise ValueError("regex needs a pattern, e.g. regex:^[A-Z]{2}\\d{4}$")
        try:
            return compile_regex(argument)
        except PatternError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def extract(cls, text: str, rule: Any, ctx: ExtractContext) -> list[Found]:
        """Each match; with a group in the pattern, the first group is the value."""
        group = 1 if rule.groups else 0
        return [
            Found(m.group(group), m.start(group), m.end(group))
            for m in rule.finditer(text)
            if m.group(group) is not None
        ]


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

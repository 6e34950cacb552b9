"""Regular expressions written by flow authors, run on a linear-time engine (RE2, module ``re2``).

A pattern from a flow (intent ``patterns``, ``regex:`` slot rules, the expression language's ``matches``,
flow-test expectations) is searched in text a user sent, so Python's backtracking ``re`` would let one
message freeze the event loop for everyone (``(a+)+$`` on 27 characters: 21 s). RE2 searches in time linear
in the text, whatever the pattern. What it cannot express (backreferences, lookahead/lookbehind,
possessive quantifiers, conditionals) is refused when the flow is validated, saying why. Patterns are
compiled once, when the flow is compiled; nothing here runs per turn but the search.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any, Protocol

import re2

MAX_PATTERN_MEMORY = 1 << 20  # bytes RE2 may use for one pattern's program and its DFA cache
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern to stderr
_OPTIONS.max_mem = MAX_PATTERN_MEMORY
_IGNORE_CASE = re2.Options()
_IGNORE_CASE.log_errors = False
_IGNORE_CASE.max_mem = MAX_PATTERN_MEMORY
_IGNORE_CASE.case_sensitive = False
WHY = (
    "the engine runs patterns in linear time (RE2), without backreferences, lookaround or "
    "possessive quantifiers"
)


class Match(Protocol):
    def group(self, index: int = 0, /) -> str | None: ...
    def start(self, index: int = 0, /) -> int: ...
    def end(self, index: int = 0, /) -> int: ...


class Regex(Protocol):
    """A compiled pattern: the part of the ``re.Pattern`` interface the engine uses."""

    @property
    def pattern(self) -> str: ...
    @property
    def groups(self) -> int: ...
    def search(self, text: str | bytes, /) -> Match | None: ...
    def fullmatch(self, text: str, /) -> Match | None: ...
    def finditer(self, text: str, /) -> Iterator[Match]: ...


class PatternError(ValueError):
    """A pattern that does not compile; the message says why (with ``WHY`` when Python's ``re`` would
    take it but RE2 cannot express it)."""


def compile_regex(pattern: str, ignore_case: bool = False) -> Regex:
    """``pattern`` compiled on RE2; ``PatternError`` when it does not compile."""
    try:
        compiled: Regex = re2.compile(pattern, options=_IGNORE_CASE if ignore_case else _OPTIONS)
    except re2.error as exc:
        reason = _reason(exc)
        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError):
            raise PatternError(f"bad regular expression {pattern!r}: {reason}") from None
        raise PatternError(f"regular expression {pattern!r} is not supported ({reason}): {WHY}") from None
    return compiled


def found_in(regex: Regex, text: str) -> bool:
    """Whether ``regex`` matches anywhere in ``text``: searched as UTF-8 bytes, which RE2 reads anyway,
    so the wrapper does not map every match's byte offsets back to characters (4x the search itself)
    for a yes or no."""
    return regex.search(text.encode()) is not None


@functools.lru_cache(maxsize=512)
def cached_regex(pattern: str) -> Regex | None:
    """A pattern known only when a turn runs (``x matches variables.p``): compiled once per distinct text,
    None when it does not compile (such a pattern never matches)."""
    try:
        return compile_regex(pattern)
    except PatternError:
        return None


def _reason(exc: Any) -> str:
    message = exc.args[0] if exc.args else str(exc)
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)

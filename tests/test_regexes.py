"""The public regex helpers: ``found_in`` answers as ``search`` does, on any text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_engine import PatternError, compile_regex, found_in

PATTERNS = [r"(?i)\b(order|pizzas?)\b", r"^\s*(yes|yeah)\b", r"caf.", r"\d{3}", r"^$", r"😀+", r"\bnaïve\b"]
TEXTS = ["I'd like two large pizzas", "ORDER now", "yes please", "café au lait", "call 555", "", "😀😀"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("ignore_case", [False, True])
def test_found_in_agrees_with_search(pattern: str, ignore_case: bool) -> None:
    regex = compile_regex(pattern, ignore_case=ignore_case)
    for text in TEXTS:
        assert found_in(regex, text) is (regex.search(text) is not None), (pattern, text)


@given(st.sampled_from(PATTERNS), st.text(max_size=40))
def test_found_in_agrees_with_search_on_any_text(pattern: str, text: str) -> None:
    regex = compile_regex(pattern, ignore_case=True)
    assert found_in(regex, text) is (regex.search(text) is not None)


def test_a_pattern_re2_cannot_run_says_why() -> None:
    with pytest.raises(PatternError, match="not supported"):
        compile_regex(r"(a)\1")

"""RFC 7386 JSON merge patch: the RFC's own test cases (Appendix A), and nothing changed in place."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mcp_engine.experiments.merge_patch import merge_patch

# RFC 7386, Appendix A "Example Test Cases": original, patch, result.
RFC_7386_APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_7386_APPENDIX_A)
def test_rfc_7386_appendix_a(original: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy((original, patch))
    assert merge_patch(original, patch) == result
    assert (original, patch) == before  # neither was changed


def test_a_deep_patch_leaves_the_stored_document_alone() -> None:
    stored = {"states": {"greet": {"config": {"response_templates": {"default": "Hello", "voice": "Hi"}}}}}
    patched = merge_patch(
        stored, {"states": {"greet": {"config": {"response_templates": {"default": "Yo"}}}}}
    )
    assert patched["states"]["greet"]["config"]["response_templates"] == {"default": "Yo", "voice": "Hi"}
    assert stored["states"]["greet"]["config"]["response_templates"]["default"] == "Hello"

"""Response mapping: JSONPath parsed once, applied all-or-nothing, written into the context."""

from typing import Any

import pytest

from mcp_engine.plugins.integrations.mapping import (
    MappingError,
    apply_response_mapping,
    compile_response_mapping,
    set_path,
)

RESPONSE = {
    "data": {"balance": 12.5, "currency": "EUR", "owner": None},
    "transactions": [{"id": 1, "amount": -5}, {"id": 2, "amount": 20}],
    "tags": [],
}


def test_singular_paths_yield_the_value() -> None:
    mapping = {
        "variables.balance": "$.data.balance",
        "variables.first_id": "$.transactions[0].id",
        "variables.owner": "$.data.owner",
        "variables.everything": "$",
        "variables.count": "$.transactions.`len`",
    }
    assert apply_response_mapping(RESPONSE, mapping) == {
        "variables.balance": 12.5,
        "variables.first_id": 1,
        "variables.owner": None,
        "variables.everything": RESPONSE,
        "variables.count": 2,
    }


def test_multi_valued_paths_always_yield_a_list() -> None:
    mapping = {
        "variables.ids": "$.transactions[*].id",
        "variables.credits": "$.transactions[?(@.amount > 0)].id",
        "variables.no_tags": "$.tags[*]",
        "variables.all_ids": "$..id",
    }
    assert apply_response_mapping(RESPONSE, mapping) == {
        "variables.ids": [1, 2],
        "variables.credits": [2],
        "variables.no_tags": [],
        "variables.all_ids": [1, 2],
    }


def test_a_singular_path_matching_nothing_names_target_and_path() -> None:
    compiled = compile_response_mapping({"variables.balance": "$.data.balance", "slots.x": "$.data.missing"})
    with pytest.raises(MappingError, match=r"'slots\.x' \('\$\.data\.missing'\): matches nothing") as caught:
        compiled.apply(RESPONSE)
    assert (caught.value.target, caught.value.path) == ("slots.x", "$.data.missing")


@pytest.mark.parametrize("data", [None, "text", [1, 2], {"data": "not an object"}])
def test_responses_of_another_shape_are_mapping_errors(data: Any) -> None:
    with pytest.raises(MappingError):
        apply_response_mapping(data, {"variables.balance": "$.data.balance"})


def test_bad_jsonpath_fails_at_compile_time() -> None:
    with pytest.raises(MappingError, match="is not a valid JSONPath") as caught:
        compile_response_mapping({"variables.ok": "$.a", "variables.bad": "$.[[["})
    assert caught.value.target == "variables.bad"


def test_compiled_mapping_is_reusable() -> None:
    compiled = compile_response_mapping({"variables.balance": "$.data.balance"})
    assert compiled.apply(RESPONSE) == {"variables.balance": 12.5}
    assert compiled.apply({"data": {"balance": 3}}) == {"variables.balance": 3}


def test_set_path_creates_nested_dicts_and_keeps_siblings() -> None:
    context: dict[str, Any] = {"variables": {"kept": 1}, "slots": {}}
    set_path(context, "variables.balance", 12.5)
    set_path(context, "slots.account", "42")
    set_path(context, "user_profile.address.city", "Paris")
    assert context == {
        "variables": {"kept": 1, "balance": 12.5},
        "slots": {"account": "42"},
        "user_profile": {"address": {"city": "Paris"}},
    }


def test_set_path_refuses_to_overwrite_a_non_object() -> None:
    context: dict[str, Any] = {"variables": {"account": "42"}}
    with pytest.raises(MappingError, match=r"'variables\.account' holds a str"):
        set_path(context, "variables.account.id", 1)
    assert context == {"variables": {"account": "42"}}


@pytest.mark.parametrize("target", ["variables.", "variables..x", "balance", ""])
def test_set_path_needs_a_dotted_path(target: str) -> None:
    with pytest.raises(MappingError):
        set_path({}, target, 1)

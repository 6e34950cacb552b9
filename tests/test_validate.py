"""The validator reports every problem at once, each with a pointer, a line and a clear message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_engine.errors import FlowValidationError
from mcp_engine.flow.problems import Problem
from mcp_engine.flow.validate import load_flow, validate_data, validate_file, validate_text
from tests.flowdocs import minimal_flow


def problems(doc: Any) -> list[Problem]:
    return validate_data(doc).problems


def only(found: list[Problem], code: str) -> list[Problem]:
    return [p for p in found if p.code == code]


def test_minimal_flow_is_clean() -> None:
    assert problems(minimal_flow()) == []


def test_json_syntax_error_has_line_and_column() -> None:
    result = validate_text('{\n  "flow_id": "x",\n  "states": {,}\n}', "broken.json")
    (problem,) = result.problems
    assert problem.code == "json-syntax"
    assert (problem.line, problem.column) == (3, 14)


def test_yaml_document_and_syntax_error(tmp_path: Path) -> None:
    import yaml

    good = tmp_path / "flow.yaml"
    good.write_text(yaml.safe_dump(minimal_flow()))
    assert validate_file(good).problems == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow_id: x\nstates: [a\n")
    (problem,) = validate_file(bad).problems
    assert problem.code == "yaml-syntax"
    assert problem.line is not None


@pytest.mark.parametrize(
    ("path", "value", "pointer", "fragment"),
    [
        (("flow_id",), "Bad Id!", "/flow_id", "pattern"),
        (("version",), "1.0", "/version", "pattern"),
        (("states", "ask", "transitions", 0, "priority"), 1001, "/states/ask/transitions/0/priority", "1000"),
        (("states", "ask", "transitions", 0, "priority"), -1, "/states/ask/transitions/0/priority", "0"),
        (("settings",), {"timezone": "Mars/Base"}, "/settings/timezone", "unknown timezone"),
        (("states", "menu", "colour"), "red", "/states/menu/colour", "unknown field 'colour'"),
    ],
)
def test_schema_violations_have_pointers(
    path: tuple[Any, ...], value: Any, pointer: str, fragment: str
) -> None:
    doc = minimal_flow()
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    found = [p for p in problems(doc) if p.pointer == pointer]
    assert found, problems(doc)
    assert fragment in found[0].message
    assert found[0].severity == "error"


def test_missing_required_field() -> None:
    doc = minimal_flow()
    del doc["tenant_id"]
    (problem,) = problems(doc)
    assert problem.pointer == "/tenant_id"
    assert "missing required field" in problem.message


def test_unknown_target_state_names_near_matches_and_line(tmp_path: Path) -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["transitions"][0]["target_state"] = "chek"
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(doc, indent=2))
    (problem,) = only(validate_file(path).problems, "unknown-state")
    assert problem.pointer == "/states/ask/transitions/0/target_state"
    assert "'chek'" in problem.message
    assert "'check'" in problem.message
    lines = path.read_text().splitlines()
    assert '"target_state": "chek"' in lines[problem.line - 1]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda d: d.update(initial_state="start"), "/initial_state"),
        (lambda d: d["global_handlers"]["intents"]["help"].update(target_state="nope"), None),
        (lambda d: d["global_handlers"].update(error_state="oops"), "/global_handlers/error_state"),
        (
            lambda d: d["global_handlers"]["no_match"].update(target_state="human"),
            "/global_handlers/no_match/target_state",
        ),
        (
            lambda d: d["states"]["menu"]["transitions"][0].setdefault(
                "actions", [{"type": "trigger_flow", "flow_id": "other", "return_state": "bak"}]
            ),
            "/states/menu/transitions/0/actions/0/return_state",
        ),
    ],
)
def test_every_state_reference_is_checked(mutate: Any, pointer: str | None) -> None:
    doc = minimal_flow()
    mutate(doc)
    found = only(problems(doc), "unknown-state")
    assert len(found) == 1, problems(doc)
    assert pointer is None or found[0].pointer == pointer


def test_unknown_kinds_list_the_known_ones() -> None:
    doc = minimal_flow()
    doc["states"]["helping"]["type"] = "responce"
    doc["states"]["ask"]["transitions"][0]["condition"] = "slot_filed"
    doc["states"]["bye"]["entry_actions"] = [{"type": "send_mesage", "text": "x"}]
    doc["states"]["ask"]["config"]["validation_rules"]["size"] = "colour:red"
    found = {p.code: p for p in problems(doc)}
    assert "did you mean 'response'" in found["unknown-state-type"].message
    assert "known: condition, end, integration" in found["unknown-state-type"].message
    assert "'slot_filled'" in found["unknown-condition"].message
    assert found["unknown-action"].pointer == "/states/bye/entry_actions/0/type"
    assert "known: bool, date" in found["bad-rule"].message


def test_conditions_missing_their_value_or_expression() -> None:
    doc = minimal_flow()
    del doc["states"]["menu"]["transitions"][0]["condition_value"]
    del doc["states"]["helping"]["transitions"][0]["expression"]
    found = only(problems(doc), "missing-value")
    assert {p.pointer for p in found} == {
        "/states/menu/transitions/0/condition_value",
        "/states/helping/transitions/0/expression",
    }


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("slots.size ==", "column"),
        ("secrets.key == 1", "unknown name"),
        ("open('x')", "open"),
        ("().__class__", ""),
    ],
)
def test_bad_expressions_are_errors_with_position(expression: str, fragment: str) -> None:
    doc = minimal_flow()
    doc["states"]["helping"]["transitions"][0]["expression"] = expression
    (problem,) = only(problems(doc), "expression-syntax")
    assert problem.pointer == "/states/helping/transitions/0/expression"
    assert fragment in problem.message


def test_undeclared_intents() -> None:
    doc = minimal_flow()
    doc["states"]["menu"]["config"]["intent_patterns"].append("refund")
    doc["states"]["menu"]["transitions"][0]["condition_value"] = "ordr"
    doc["global_handlers"]["intents"]["cancel"] = {"target_state": "bye"}
    found = only(problems(doc), "unknown-intent")
    assert {p.pointer for p in found} == {
        "/states/menu/config/intent_patterns/2",
        "/states/menu/transitions/0/condition_value",
        "/global_handlers/intents/cancel",
    }
    assert any("did you mean 'order'" in p.message for p in found)


def test_slots_used_but_never_collected() -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["transitions"][0]["condition_value"] = "colour"
    doc["states"]["helping"]["transitions"][0]["expression"] = "slots.sise == 'large'"
    found = only(problems(doc), "unknown-slot")
    assert len(found) == 2
    assert any("did you mean 'size'" in p.message for p in found)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("int:9..1", "minimum 9 is above maximum 1"),
        ("regex:([a-z", "bad regular expression"),
        ("enum:", "needs"),
    ],
)
def test_validation_rules_that_do_not_parse(rule: str, fragment: str) -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["config"]["validation_rules"]["size"] = rule
    (problem,) = only(problems(doc), "bad-rule")
    assert problem.pointer == "/states/ask/config/validation_rules/size"
    assert fragment in problem.message


def test_integrations_referenced_but_not_declared() -> None:
    doc = minimal_flow()
    doc["states"]["check"]["config"]["integration_id"] = "stok"
    doc["states"]["bye"]["entry_actions"] = [{"type": "call_integration", "integration_id": "crm"}]
    doc["integrations"]["stock"]["type"] = "soap"
    found = problems(doc)
    assert {p.pointer for p in only(found, "unknown-integration")} == {
        "/states/check/config/integration_id",
        "/states/bye/entry_actions/0/integration_id",
    }
    assert only(found, "unknown-integration-type")[0].pointer == "/integrations/stock/type"


def test_state_config_checked_against_its_type() -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["config"]["prompts"] = {}
    doc["states"]["check"]["config"]["method"] = "FETCH"
    doc["states"]["helping"]["config"]["response_template"] = "typo"
    found = {p.pointer: p for p in problems(doc)}
    assert "no prompt" in found["/states/ask/config"].message
    assert "/states/check/config/method" in found
    assert found["/states/helping/config/response_template"].message == "unknown field 'response_template'"


def test_integration_error_kind_is_checked() -> None:
    doc = minimal_flow()
    doc["states"]["check"]["transitions"][1]["condition_value"] = "http_500"
    (problem,) = only(problems(doc), "bad-value")
    assert "http_5xx" in problem.message


def test_automatic_loop_that_no_input_can_break() -> None:
    doc = minimal_flow()
    doc["states"]["a"] = {
        "type": "condition",
        "transitions": [{"condition": "expression", "expression": "variables.n > 1", "target_state": "b"}],
    }
    doc["states"]["b"] = {
        "type": "condition",
        "transitions": [{"condition": "expression", "expression": "true", "target_state": "a"}],
    }
    doc["states"]["menu"]["transitions"].append(
        {"condition": "any_input", "target_state": "a", "priority": 500}
    )
    (problem,) = only(problems(doc), "automatic-loop")
    assert "a -> b -> a" in problem.message


def test_forced_loop_with_an_unreachable_exit_is_an_error() -> None:
    doc = minimal_flow()
    doc["states"]["a"] = {
        "type": "condition",
        "transitions": [
            {"condition": "expression", "expression": "true", "target_state": "a", "priority": 1},
            {"condition": "expression", "expression": "variables.n > 1", "target_state": "bye"},
        ],
    }
    doc["states"]["menu"]["transitions"].append(
        {"condition": "any_input", "target_state": "a", "priority": 500}
    )
    assert len(only(problems(doc), "automatic-loop")) == 1


def test_loop_broken_by_input_is_fine() -> None:
    doc = minimal_flow()
    doc["states"]["bye"] = {
        "type": "response",
        "config": {"response_templates": {"default": "again?"}},
        "transitions": [{"condition": "any_input", "target_state": "menu"}],
    }
    assert only(problems(doc), "automatic-loop") == []


def test_warnings_unreachable_dead_end_priority_conflict_no_end() -> None:
    doc = minimal_flow()
    doc["states"]["orphan"] = {"type": "response", "config": {"response_templates": {"default": "?"}}}
    doc["states"]["menu"]["transitions"].append({"condition": "any_input", "target_state": "ask"})
    doc["states"]["bye"] = {"type": "condition", "transitions": []}
    found = problems(doc)
    assert all(p.severity == "warning" for p in found), found
    codes = {p.code: p for p in found}
    assert codes["unreachable"].pointer == "/states/orphan"
    assert {p.pointer for p in only(found, "dead-end")} == {"/states/orphan", "/states/bye"}
    assert codes["priority-conflict"].pointer == "/states/menu/transitions/1/priority"
    assert "no-end" in codes


def test_exclusive_equal_priorities_do_not_warn() -> None:
    doc = minimal_flow()
    doc["states"]["menu"]["transitions"].append(
        {"condition": "intent_match", "condition_value": "help", "target_state": "helping"}
    )
    doc["states"]["menu"]["transitions"].append({"condition": "low_confidence", "target_state": "helping"})
    doc["states"]["helping"]["transitions"].append(
        {"condition": "expression", "expression": "slots.size == 'small'", "target_state": "menu"}
    )
    assert problems(doc) == []


def test_every_problem_at_once_even_with_schema_errors() -> None:
    doc = minimal_flow()
    doc["version"] = "one"
    doc["states"]["menu"]["transitions"][0]["priority"] = 5000
    doc["states"]["ask"]["transitions"][0]["target_state"] = "nowhere"
    doc["states"]["helping"]["transitions"][0]["expression"] = "slots.size =="
    doc["states"]["check"]["config"]["integration_id"] = "missing"
    codes = sorted(p.code for p in problems(doc))
    assert codes == ["expression-syntax", "schema", "schema", "unknown-integration", "unknown-state"]


def test_reference_to_a_state_with_schema_errors_is_not_reported_as_missing() -> None:
    doc = minimal_flow()
    doc["states"]["check"]["transitions"][0]["priority"] = "high"
    assert [p.code for p in problems(doc)] == ["schema"]


@pytest.mark.parametrize(
    "doc", [[], "flow", 3, None, {}, {"states": []}, {"states": {"a": 1}, "initial_state": "a"}]
)
def test_nonsense_documents_give_problems_not_tracebacks(doc: Any) -> None:
    found = problems(doc)
    assert found
    assert all(p.severity == "error" for p in found)


def test_unreadable_files(tmp_path: Path) -> None:
    assert validate_file(tmp_path / "missing.json").problems[0].code == "unreadable"
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert validate_file(binary).problems[0].code == "encoding"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert validate_file(empty).problems[0].message == "a flow document must be a JSON object"


def test_load_flow_raises_with_every_problem() -> None:
    doc = minimal_flow()
    doc["initial_state"] = "nope"
    doc["states"]["ask"]["transitions"][0]["target_state"] = "nope2"
    with pytest.raises(FlowValidationError) as caught:
        load_flow(doc)
    assert len(caught.value.problems) == 2
    assert caught.value.to_dict()["error"]["code"] == "flow_invalid"
    assert load_flow(minimal_flow()).flow_id == "shop"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


@settings(max_examples=300, deadline=None)
@given(data=st.data(), replacement=JSON)
def test_any_broken_document_gives_a_list_never_a_traceback(data: st.DataObject, replacement: Any) -> None:
    """Replace any part of a valid flow with random JSON: validation still answers with problems."""
    doc = minimal_flow()
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = replacement
    result = validate_data(doc)
    assert all(p.severity in ("error", "warning") for p in result.problems)
    assert all(p.pointer == "" or p.pointer.startswith("/") for p in result.problems)
    assert result.ok == (not result.errors)


def test_bad_jsonpath_and_template_and_classifier_are_reported() -> None:
    doc = minimal_flow()
    doc["states"]["check"]["config"]["response_mapping"] = {"variables.stock": "$.items[?(@.x ==]"}
    doc["states"]["helping"]["config"]["response_templates"]["default"] = "Hi {{ slots.size "
    doc["settings"] = {"classifier": "bulitin"}
    found = {p.pointer: p for p in problems(doc)}
    assert "variables.stock" in found["/states/check/config/response_mapping"].message
    assert found["/states/helping/config/response_templates/default"].code == "template-syntax"
    assert "did you mean 'builtin'" in found["/settings/classifier"].message


def test_classifier_config_is_checked_against_the_classifier() -> None:
    doc = minimal_flow()
    doc["settings"] = {
        "classifier": "http",
        "classifier_config": {"url": "http://127.0.0.1:9", "timout_ms": 5},
    }
    (problem,) = problems(doc)
    assert problem.pointer == "/settings/classifier_config/timout_ms"

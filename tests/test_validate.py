"""The validator reports every problem at once, each with a pointer, a line and a clear message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_engine import ConditionType, hookimpl
from mcp_engine.errors import FlowValidationError
from mcp_engine.flow.problems import Problem
from mcp_engine.flow.validate import load_flow, validate_data, validate_file, validate_text
from mcp_engine.plugin_manager import create_plugin_manager
from mcp_engine.registry import Registry
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
        ("number:5.5..-2", "minimum 5.5 is above maximum -2"),
        ("regex:([a-z", "bad regular expression"),
        ("enum:", "needs"),
        ("int:1..2..3", "'1..2..3' is not a range"),
        ("int:x", "'x' is not a range"),
        ("int:", "nothing after ':'"),
        ("text:", "nothing after ':'"),
        ("email:work", "takes no argument"),
        ("enum:small=,large", "empty synonym for 'small'"),
        ("enum:small|tiny,large", "write a value and its synonyms as large=big|huge"),
        ("enum:small=tiny=wee", "write a value and its synonyms"),
        ("phone:Atlantis", "not a region code"),
        ("colour", "unknown rule kind 'colour'"),
    ],
)
def test_validation_rules_that_do_not_parse(rule: str, fragment: str) -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["config"]["validation_rules"]["size"] = rule
    (problem,) = only(problems(doc), "bad-rule")
    assert problem.pointer == "/states/ask/config/validation_rules/size"
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("states", "menu", "transitions", 0, "priority"), 5000, "got 5000"),
        (("flow_id",), "Bad ID", "got 'Bad ID'"),
        (("settings", "max_message_chars"), 0, "got 0"),
        (("settings", "max_steps"), "many", "got 'many'"),
        (("states", "menu", "transitions", 0, "condition_value"), ["order"], "got a list"),
    ],
)
def test_a_bad_value_is_shown_in_its_message(path: tuple[Any, ...], value: Any, fragment: str) -> None:
    doc = minimal_flow()
    target = doc
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value
    (problem,) = [p for p in problems(doc) if p.severity == "error"]
    assert fragment in problem.message, problem.message


def test_intent_match_without_a_value_or_with_an_undeclared_intent() -> None:
    doc = minimal_flow()
    menu = doc["states"]["menu"]["transitions"]
    menu.append({"condition": "intent_match", "target_state": "helping", "priority": 5})
    menu.append(
        {"condition": "intent_match", "condition_value": "refund", "target_state": "bye", "priority": 6}
    )
    found = {p.pointer: p for p in problems(doc) if p.severity == "error"}
    assert found["/states/menu/transitions/1/condition_value"].code == "missing-value"
    assert found["/states/menu/transitions/2/condition_value"].code == "unknown-intent"
    assert "'refund'" in found["/states/menu/transitions/2/condition_value"].message


# --- what the durable rules backend would refuse --------------------------------------------------


def test_what_the_durable_backend_refuses_is_refused_by_validate() -> None:
    doc = minimal_flow()
    helping = doc["states"]["helping"]["transitions"]
    ors = " or ".join(f"slots.size == 's{i}'" for i in range(20))  # refused by durable_rules (error 113)
    wide = " or ".join(f"variables.v{i} != null" for i in range(70))  # more alternatives than it evaluates
    fine = " or ".join(f"slots.size == 's{i}'" for i in range(5))
    for i, expression in enumerate((ors, wide, fine)):
        helping.append(
            {"condition": "expression", "expression": expression, "target_state": "bye", "priority": i}
        )
    found = only(problems(doc), "durable-refuses")
    assert [p.pointer for p in found] == ["/states/helping/transitions/1", "/states/helping/transitions/2"]
    assert all(p.severity == "error" for p in found)
    assert "error code: 113" in found[0].message
    assert "70 alternatives" in found[1].message
    # the other states are still checked when one state is broken, and a broken state is not compiled
    doc["states"]["menu"]["transitions"][0]["condition"] = "telepathy"
    assert {p.code for p in problems(doc) if p.pointer.startswith("/states/menu")} == {"unknown-condition"}
    assert len(only(problems(doc), "durable-refuses")) == 2


def test_a_condition_plugin_whose_rule_fails_is_an_error_not_a_traceback() -> None:
    class Picky(ConditionType):
        name = "picky"
        value = "optional"

        @classmethod
        def rule(cls, value: str | None, ctx: Any) -> dict[str, Any]:
            if value == "boom":
                raise ValueError("picky cannot say 'boom'")
            return {"$nex": {"nothing": 1}}

    class Plugin:
        @hookimpl
        def mcp_engine_condition_types(self) -> list[type[ConditionType]]:
            return [Picky]

    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(Plugin())
    doc = minimal_flow()
    doc["states"]["helping"]["transitions"].append(
        {"condition": "picky", "condition_value": "boom", "target_state": "bye", "priority": 1}
    )
    (problem,) = only(validate_data(doc, Registry.from_plugin_manager(pm)).problems, "bad-condition")
    assert problem.pointer == "/states/helping/transitions"
    assert "picky cannot say 'boom'" in problem.message


# --- response mappings against the documented responses -----------------------------------------


def documented(mapping: dict[str, str], examples: dict[str, Any]) -> list[Problem]:
    doc = minimal_flow()
    doc["integrations"]["stock"]["response_examples"] = examples
    doc["states"]["check"]["config"]["response_mapping"] = mapping
    return only(problems(doc), "mapping-never-matches")


EXAMPLE = {"items": [{"id": 1, "tags": []}], "meta": {"next": None}, "total": 1}


@pytest.mark.parametrize(
    ("path", "warned"),
    [
        ("$.items[*].id", False),
        ("$.items[*].sku", True),  # no item documents a sku
        ("$.item[*].id", True),  # a typo
        ("$.total[*]", True),  # a number is no list
        ("$.items.id", True),  # a field of a list
        ("$.items[0].id", False),
        ("$.items[3].id", False),  # any index may exist in a real response
        ("$.items[*].tags[*].name", False),  # an empty list in the example says nothing
        ("$.meta.next.page", False),  # nor does a null
        ("$..id", False),
        ("$..sku", False),  # the empty tags list might hold one
        ("$.items[?(@.id > 1)].id", False),  # filters depend on values
        ("$.*.next", False),
        ("$.*.page", True),
    ],
)
def test_a_jsonpath_that_can_never_match_the_documented_response_is_a_warning(
    path: str, warned: bool
) -> None:
    found = documented({"variables.x": path}, {"/stock/{{ slots.size }}": EXAMPLE})
    assert bool(found) == warned, found
    if warned:
        assert found[0].severity == "warning"
        assert found[0].pointer == "/states/check/config/response_mapping/variables.x"
        assert path in found[0].message
        assert "stock" in found[0].message


def test_the_documented_response_is_found_by_method_endpoint_then_any() -> None:
    endpoint = "/stock/{{ slots.size }}"
    assert documented({"variables.x": "$.a[*]"}, {f"GET {endpoint}": {"b": 1}, endpoint: {"a": [1]}})
    assert not documented({"variables.x": "$.a[*]"}, {f"POST {endpoint}": {"b": 1}, endpoint: {"a": [1]}})
    assert documented({"variables.x": "$.a[*]"}, {"*": {"b": 1}})
    assert not documented({"variables.x": "$.a[*]"}, {"/other": {"b": 1}})  # undocumented: not checked


def test_call_integration_actions_are_checked_too() -> None:
    doc = minimal_flow()
    doc["integrations"]["stock"]["response_examples"] = {"/log": {"ok": True}}
    action = {
        "type": "call_integration",
        "integration_id": "stock",
        "endpoint": "/log",
        "method": "POST",
        "response_mapping": {"variables.ids": "$.ids[*]"},
    }
    doc["states"]["menu"]["entry_actions"] = [action]
    (problem,) = only(problems(doc), "mapping-never-matches")
    assert problem.pointer == "/states/menu/entry_actions/0/response_mapping/variables.ids"


# --- graph checks despite errors --------------------------------------------------------------------


def test_unreachable_and_dead_ends_are_reported_when_initial_state_is_broken() -> None:
    doc = minimal_flow()
    doc["initial_state"] = "mneu"  # "menu", most likely: taken as the start
    doc["states"]["orphan"] = {"type": "condition"}
    found = problems(doc)
    assert [p.pointer for p in found if p.severity == "error"] == ["/initial_state"]
    assert [p.pointer for p in only(found, "unreachable")] == ["/states/orphan"]
    assert [p.pointer for p in only(found, "dead-end")] == ["/states/orphan"]
    assert "reading initial_state as 'menu'" in only(found, "unreachable")[0].message

    doc["initial_state"] = "zzz"  # nothing close: only what nothing leads to is reported
    unreachable = {p.pointer for p in only(problems(doc), "unreachable")}
    assert unreachable == {"/states/orphan", "/states/menu"}


def test_a_state_with_a_schema_error_still_leads_where_its_transitions_say() -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["transitions"][0]["priority"] = "high"  # ask is the only way to "check"
    doc["states"]["orphan"] = {"type": "response", "config": {"response_templates": {"default": "?"}}}
    doc["states"]["broken"] = {"type": "no_such_type"}
    found = problems(doc)
    assert {p.pointer for p in only(found, "unreachable")} == {"/states/orphan", "/states/broken"}
    assert {p.pointer for p in only(found, "dead-end")} == {"/states/orphan"}  # not the unknown type


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
    # "check" was reached only through the transition now pointing nowhere: the graph checks run too
    assert codes == [
        "expression-syntax",
        "schema",
        "schema",
        "unknown-integration",
        "unknown-state",
        "unreachable",
    ]


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
    assert [p.pointer for p in caught.value.problems if p.severity == "error"] == [
        "/initial_state",
        "/states/ask/transitions/0/target_state",
    ]
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


# --- fuzzing the checks issue 10 added ------------------------------------------------------------

NAMES = st.sampled_from(["menu", "ask", "check", "helping", "bye", "mnue", "nowhere", "", "ask/x", "~0"])
RULES = st.one_of(
    st.sampled_from(
        ["int", "number", "enum", "text", "email", "phone", "date", "regex", "bool", "colour"]
    ).flatmap(
        lambda kind: st.one_of(
            st.just(kind),
            st.tuples(st.integers(-20, 20), st.integers(-20, 20)).map(lambda b: f"{kind}:{b[0]}..{b[1]}"),
            st.text(max_size=12).map(lambda arg: f"{kind}:{arg}"),
        )
    ),
    st.text(max_size=16),
)
COMPARISON = st.tuples(
    st.sampled_from(["slots.size", "variables.v", "intent.confidence", "event.text", "len(slots.size)"]),
    st.sampled_from(["==", "!=", "<", ">="]),
    st.one_of(st.integers(-5, 5), st.sampled_from(["'a'", "'b'", "null", "true", "1.5"])),
).map(lambda c: f"{c[0]} {c[1]} {c[2]}")
EXPRESSIONS = st.lists(COMPARISON, min_size=1, max_size=80).flatmap(
    lambda terms: st.sampled_from([" or ", " and "]).map(lambda op: op.join(terms))
)
JSONPATHS = st.lists(
    st.sampled_from(
        [".items", ".data", "[*]", "[0]", "[-1]", ".*", "..id", ".id", "[?(@.id > 1)]", "[1:3]", ".`len`"]
    ),
    max_size=5,
).map(lambda parts: "$" + "".join(parts))


@settings(max_examples=300, deadline=None)
@given(
    priority=st.integers(-10, 5000),
    rule=RULES,
    expression=EXPRESSIONS,
    path=JSONPATHS,
    example=JSON,
    endpoint=st.sampled_from(["/stock/{{ slots.size }}", "GET /stock/{{ slots.size }}", "*", "/other"]),
    initial=NAMES,
    intent=st.one_of(st.none(), st.sampled_from(["order", "help", "refund", ""])),
    broken=st.booleans(),
)
def test_the_new_checks_never_trace(
    priority: int,
    rule: str,
    expression: str,
    path: str,
    example: Any,
    endpoint: str,
    initial: str,
    intent: str | None,
    broken: bool,
) -> None:
    """Priorities, rule strings, wide expressions (durable_rules' limits), JSONPaths against random
    documented responses, broken initial states and schema-broken states: problems, never a traceback."""
    doc = minimal_flow()
    doc["initial_state"] = initial
    doc["states"]["helping"]["transitions"][0].update(expression=expression, priority=priority)
    doc["states"]["ask"]["config"]["validation_rules"]["size"] = rule
    doc["states"]["check"]["config"]["response_mapping"] = {"variables.x": path}
    doc["integrations"]["stock"]["response_examples"] = {endpoint: example}
    transition: dict[str, Any] = {"condition": "intent_match", "target_state": "bye", "priority": 7}
    if intent is not None:
        transition["condition_value"] = intent
    doc["states"]["menu"]["transitions"].append(transition)
    if broken:
        doc["states"]["ask"]["transitions"][0]["priority"] = "high"
    result = validate_data(doc)
    assert all(p.severity in ("error", "warning") for p in result.problems)
    assert all(p.pointer == "" or p.pointer.startswith("/") for p in result.problems)
    assert result.ok == (not result.errors)

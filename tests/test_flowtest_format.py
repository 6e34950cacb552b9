"""The flow test file as a designer writes it: what it accepts, and the error for each bad file (file,
line, field), before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mcp_engine.flowtest.files import TestFileLoader
from mcp_engine.flowtest.spec import file_schema
from tests.flowtest_kit import TABLES_FREE, booking, run_json, run_test, write_folder

ROOT = Path(__file__).parent.parent
GOOD_CASE = """\
cases:
  - name: books tomorrow
    turns:
      - user: book for tomorrow
        state: wait_reply
"""


def problems_of(tmp_path: Path, text: str, name: str = "booking.test.yaml") -> list[dict[str, object]]:
    write_folder(tmp_path, [booking()], {name: text})
    code, report = run_json(tmp_path / name)
    assert code == 1
    assert report["cases"] == []
    problems: list[dict[str, object]] = report["problems"]
    return problems


def test_a_good_file_runs_and_exits_0(tmp_path: Path) -> None:
    write_folder(tmp_path, [booking()], {"booking.test.yaml": TABLES_FREE + GOOD_CASE})
    result = run_test(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"PASS  {tmp_path / 'booking.test.yaml'}: books tomorrow\n")
    assert result.output.rstrip().endswith("1 passed")


def test_yaml_syntax_error_names_the_line_and_how_to_quote(tmp_path: Path) -> None:
    text = GOOD_CASE + "        messages: [Which day?]\n"
    (problem,) = problems_of(tmp_path, text)
    assert problem["line"] == 6
    assert problem["code"] == "yaml-syntax"
    assert "quote a message regex" in str(problem["message"])


def test_a_misspelt_field_is_an_error_with_its_pointer_and_line(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, GOOD_CASE.replace("state:", "stat:"))
    assert problem == {
        "file": str(tmp_path / "booking.test.yaml"),
        "pointer": "/cases/0/turns/0/stat",
        "message": "unknown field 'stat'",
        "code": "schema",
        "line": 5,
    }


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """\
cases:
  - name: two inputs
    turns:
      - {user: hi, timeout: true}
  - name: no input
    turns:
      - state: menu
  - name: a bad regex
    turns:
      - user: hi
        messages: ["(unclosed"]
  - turns: [{user: hi}]
"""
    problems = problems_of(tmp_path, text)
    found = {(p["pointer"], p["line"]): p["message"] for p in problems}
    assert found == {
        ("/cases/0/turns/0", 4): "a turn sends exactly one of user, event, timeout (got user, timeout)",
        ("/cases/1/turns/0", 7): "a turn sends exactly one of user, event, timeout (got none)",
        ("/cases/2/turns/0/messages/0/text", 11): (
            "bad regular expression '(unclosed': missing ): (unclosed"
        ),
        ("/cases/3/name", 12): "missing required field 'name'",
    }


def test_yes_and_no_are_text_but_a_float_must_be_quoted(tmp_path: Path) -> None:
    text = """\
cases:
  - name: words YAML 1.1 calls booleans are text
    turns:
      - user: book
      - user: yes
      - user: no
        slots: {day: null}
"""
    write_folder(tmp_path, [booking()], {"booking.test.yaml": text})
    assert run_test(tmp_path).exit_code == 0
    (problem,) = problems_of(tmp_path, text.replace("user: no", "user: 1.50"))
    assert problem["pointer"] == "/cases/0/turns/2/user"
    assert problem["message"] == "YAML read this as 1.5, not as text: put it in quotes"


def test_names_no_flow_declares_are_errors_with_near_matches(tmp_path: Path) -> None:
    text = """\
fakes:
  - {integration: table, body: {}}
cases:
  - name: typos
    turns:
      - user: book
        state: ask_dya
        flow: bookin
        intent: bok
"""
    problems = problems_of(tmp_path, text)
    assert [(p["pointer"], p["code"], p["message"]) for p in problems] == [
        (
            "/fakes/0/integration",
            "unknown-integration",
            "no loaded flow declares the integration 'table' (declared: tables)",
        ),
        (
            "/cases/0/turns/0/state",
            "unknown-state",
            "no loaded flow has the state 'ask_dya' (did you mean 'ask_day'?)",
        ),
        (
            "/cases/0/turns/0/flow",
            "unknown-flow",
            "no loaded flow has the flow 'bookin' (did you mean 'booking'?)",
        ),
        (
            "/cases/0/turns/0/intent",
            "unknown-intent",
            "no loaded flow has the intent 'bok' (did you mean 'book'?)",
        ),
    ]
    assert [p["line"] for p in problems] == [2, 7, 8, 9]


def test_a_fake_that_fails_has_no_answer(tmp_path: Path) -> None:
    text = "fakes:\n  - {integration: tables, error: timeout, status: 200}\n" + GOOD_CASE
    (problem,) = problems_of(tmp_path, text)
    assert (problem["pointer"], problem["line"]) == ("/fakes/0", 2)
    assert problem["message"] == "a fake with error 'timeout' has no status or body"


def test_the_flow_under_test_must_be_beside_the_file(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, GOOD_CASE, "other.test.yaml")
    assert problem["code"] == "unknown-flow"
    assert problem["message"] == "the flow under test 'other' is not here (flows: booking)"
    (problem,) = problems_of(tmp_path, "flow: pizza\n" + GOOD_CASE)
    assert (problem["pointer"], problem["line"]) == ("/flow", 1)


def test_a_bare_list_of_cases_and_a_json_file(tmp_path: Path) -> None:
    bare = "- name: books\n  turns:\n    - user: book\n      state: ask_dey\n"
    (problem,) = problems_of(tmp_path, bare)
    assert (problem["pointer"], problem["line"]) == ("/0/turns/0/state", 4)
    cases = {"flow": "booking", "cases": [{"name": "books", "turns": [{"user": "book", "state": "ask_day"}]}]}
    write_folder(tmp_path, [], {"booking.test.yaml": "", "any.test.json": json.dumps(cases)})
    code, report = run_json(tmp_path / "any.test.json")
    assert (code, report["summary"]["passed"]) == (0, 1)


def test_broken_flows_beside_the_tests_are_problems(tmp_path: Path) -> None:
    broken = booking()
    broken["flow_id"] = "broken"
    broken["initial_state"] = "nowhere"
    write_folder(tmp_path, [booking(), broken], {"booking.test.yaml": TABLES_FREE + GOOD_CASE})
    code, report = run_json(tmp_path)
    assert code == 1
    assert report["summary"]["passed"] == 1
    assert [(p["file"], p["pointer"]) for p in report["problems"]] == [
        (str(tmp_path / "broken.json"), "/initial_state")
    ]


def test_missing_paths_and_folders_without_tests(tmp_path: Path) -> None:
    write_folder(tmp_path, [booking()], {})
    code, report = run_json(tmp_path, tmp_path / "nope.test.yaml")
    assert code == 1
    assert [p["code"] for p in report["problems"]] == ["no-tests", "unreadable"]


def test_serve_and_validate_do_not_take_test_files_for_flows(tmp_path: Path) -> None:
    from mcp_engine.flow.loader import flow_files

    write_folder(tmp_path, [booking()], {"booking.test.yaml": GOOD_CASE, "b.test.json": "[]"})
    assert flow_files(tmp_path) == [tmp_path / "booking.json"]


def test_the_json_schema_is_current_and_accepts_the_examples() -> None:
    written = json.loads((ROOT / "docs" / "flow-test.schema.json").read_text(encoding="utf-8"))
    assert written == file_schema(), "regenerate: mcp-engine schema --test-file > docs/flow-test.schema.json"
    jsonschema.Draft202012Validator.check_schema(written)
    validator = jsonschema.Draft202012Validator(written)
    examples = sorted((ROOT / "examples" / "flows").glob("*.test.yaml"))
    assert examples
    for path in examples:
        data = json.loads(json.dumps(yaml.load(path.read_text(), Loader=TestFileLoader), default=str))
        assert [e.message for e in validator.iter_errors(data)] == [], path


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"user": "hi", "messages": [{"txt": "x"}]}, "unknown field 'txt'"),
        ({"user": "hi", "slots": ["day"]}, "Input should be a valid dictionary"),
        ({"timeout": "soon"}, "Input should be a valid boolean, unable to interpret input"),
    ],
)
def test_bad_expectations(tmp_path: Path, turn: dict[str, object], message: str) -> None:
    text = json.dumps({"cases": [{"name": "bad", "turns": [turn]}]})
    problems = problems_of(tmp_path, text, "booking.test.json")
    assert any(message in str(p["message"]) for p in problems), problems


def test_a_folder_is_searched_recursively_but_not_under_hidden_folders(tmp_path: Path) -> None:
    write_folder(tmp_path / "team" / "flows", [booking()], {"booking.test.yaml": TABLES_FREE + GOOD_CASE})
    write_folder(tmp_path / ".venv" / "pkg", [booking()], {"booking.test.yaml": "not even YAML: ["})
    code, report = run_json(tmp_path)
    assert (code, report["summary"]["passed"], report["problems"]) == (0, 1, [])

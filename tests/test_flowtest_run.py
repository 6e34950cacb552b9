"""Running flow test cases: each expectation, fakes in place of integrations, the fixed clock, timeouts,
xfail, and failures that name the turn, the line and what happened."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.flowtest_kit import TABLES_FREE, booking, run_json, run_test, write_folder

BOOK = """\
  - name: case
    turns:
      - user: book for tomorrow
"""


def run_cases(
    tmp_path: Path, cases: str, head: str = TABLES_FREE, flow: dict[str, Any] | None = None
) -> dict[str, Any]:
    write_folder(tmp_path, [flow or booking()], {"booking.test.yaml": head + "cases:\n" + cases})
    _, report = run_json(tmp_path)
    assert report["problems"] == [], report["problems"]
    return report


def failure_of(tmp_path: Path, cases: str, **kwargs: Any) -> dict[str, Any]:
    report = run_cases(tmp_path, cases, **kwargs)
    (case,) = report["cases"]
    assert case["outcome"] == "failed", case
    failure: dict[str, Any] = case["failure"]
    return failure


def test_every_expectation_holding(tmp_path: Path) -> None:
    report = run_cases(
        tmp_path,
        BOOK
        + """\
        state: wait_reply
        flow: booking
        intent: book
        messages: ["^3 tables free on 2026-03-16\\\\.$"]
        slots: {day: "2026-03-16", other: null}
        variables: {party: 2, free: 3}
      - user: fine
        state: done
        intent: null
        messages: [{text: Booked, type: text}]
""",
    )
    assert report["ok"] is True
    assert report["summary"] == {
        "cases": 1,
        "passed": 1,
        "failed": 0,
        "xfailed": 0,
        "xpassed": 0,
        "problems": 0,
    }


@pytest.mark.parametrize(
    ("expectation", "field", "message"),
    [
        ("state: confirm", "state", "state: expected 'confirm', got 'wait_reply'"),
        ("flow: booking\n        state: done", "state", "state: expected 'done', got 'wait_reply'"),
        ("messages: []", "messages", 'messages: expected 0, got 1: "3 tables free on 2026-03-16."'),
        (
            "messages: [tables busy]",
            "messages",
            'messages[0]: /tables busy/ does not match "3 tables free on 2026-03-16."',
        ),
        (
            "messages: [{text: free, attributes: {response_type: handoff}}]",
            "messages",
            'messages[0]: /free/ does not match "3 tables free on 2026-03-16."'
            " (text, {'response_type': 'text'})",
        ),
        ("intent: help", "intent", "intent: expected 'help', got 'book'"),
        ("slots: {day: tomorrow}", "slots.day", "slots.day: expected 'tomorrow', got '2026-03-16'"),
        ("variables: {free: null}", "variables.free", "variables.free: expected None, got 3"),
        ("variables: {party: true}", "variables.party", "variables.party: expected True, got 2"),
    ],
)
def test_each_expectation_failing(tmp_path: Path, expectation: str, field: str, message: str) -> None:
    failure = failure_of(tmp_path, BOOK + f"        {expectation}\n")
    assert (failure["turn"], failure["sends"], failure["field"]) == (1, 'user: "book for tomorrow"', field)
    assert failure["message"] == message
    assert failure["line"] == 10 + expectation.count("\n")  # the expectation's own line


def test_a_failure_stops_the_case_and_the_text_names_file_line_and_turn(tmp_path: Path) -> None:
    cases = BOOK + "        state: confirm\n      - user: this turn never runs\n        state: done\n"
    write_folder(tmp_path, [booking()], {"booking.test.yaml": TABLES_FREE + "cases:\n" + cases})
    result = run_test(tmp_path)
    assert result.exit_code == 1
    path = tmp_path / "booking.test.yaml"
    assert result.output.splitlines()[:2] == [
        f"FAIL  {path}: case",
        f"      {path}:10: turn 1 (user: \"book for tomorrow\"): state: expected 'confirm', got 'wait_reply'",
    ]
    assert result.output.rstrip().endswith("1 failed")


def test_the_clock_and_the_flows_timezone_decide_what_tomorrow_is(tmp_path: Path) -> None:
    # 23:30 UTC is already the 15th in Rome: tomorrow is the 16th; an hour earlier it is the 15th
    cases = BOOK + '        slots: {day: "2026-03-16"}\n'
    assert run_cases(tmp_path, cases)["ok"]
    earlier = TABLES_FREE.replace("23:30:00Z", "22:30:00+00:00")
    failure = failure_of(tmp_path, cases, head=earlier)
    assert failure["got"] == "2026-03-15"
    case_clock = BOOK.replace("    turns:", "    clock: 2026-03-14T10:00:00+01:00\n    turns:")
    assert run_cases(tmp_path, case_clock + '        slots: {day: "2026-03-15"}\n')["ok"]


def test_timeouts_fire_the_waiting_states_timer(tmp_path: Path) -> None:
    cases = (
        BOOK
        + """\
      - timeout: true
        state: wait_reply
        messages: [Still there]
      - timeout: true
        messages: [Still there]
      - user: yes
        messages: [Booked]
      - timeout: true
"""
    )
    failure = failure_of(tmp_path, cases)
    assert failure["turn"] == 5
    assert failure["field"] == "turn"
    assert failure["message"] == "the turn did not run: no timeout is armed in state 'done'"


def test_a_client_event_is_an_input_too(tmp_path: Path) -> None:
    report = run_cases(tmp_path, BOOK + "      - event: timeout\n        messages: [Still there]\n")
    assert report["ok"]


def test_fakes_are_matched_by_endpoint_method_and_params_turn_first(tmp_path: Path) -> None:
    head = """\
clock: 2026-03-14T12:00:00Z
fakes:
  - {integration: tables, endpoint: "/tables/2026-03-15", params: {party: 2}, body: {free: 1}}
  - {integration: tables, method: POST, body: {free: 99}}
"""
    cases = """\
  - name: the file's fake
    turns:
      - user: book for tomorrow
        messages: [1 tables free]
  - name: a case's fake before the file's
    fakes: [{integration: tables, body: {free: 5}}]
    turns:
      - user: book for tomorrow
        messages: [5 tables free]
  - name: a turn's fake before the case's
    fakes: [{integration: tables, body: {free: 5}}]
    turns:
      - user: book
        fakes: [{integration: tables, endpoint: "/tables/*", body: {free: 7}}]
      - user: tomorrow
        messages: [5 tables free]
  - name: no fake answers other params
    turns:
      - user: book for April 1
"""
    report = run_cases(tmp_path, cases, head=head)
    outcomes = [(c["name"], c["outcome"]) for c in report["cases"]]
    assert outcomes == [
        ("the file's fake", "passed"),
        ("a case's fake before the file's", "passed"),
        ("a turn's fake before the case's", "passed"),
        ("no fake answers other params", "failed"),
    ]
    failure = report["cases"][3]["failure"]
    assert failure["field"] == "integration"
    assert failure["message"] == (
        "no fake answers the call tables GET /tables/2026-04-01 {'party': 2}: declare one under fakes"
    )


@pytest.mark.parametrize(
    ("fake", "state"),
    [
        ("status: 404", "full"),
        ("status: 503", "sorry"),
        ("error: timeout", "sorry"),
        ("error: network", "sorry"),
        ("status: 302", "sorry"),
        ("body: {busy: true}", "sorry"),  # the response mapping finds no $.free: a mapping error
    ],
)
def test_a_fakes_answer_takes_the_flows_error_paths(tmp_path: Path, fake: str, state: str) -> None:
    head = "fakes:\n  - {integration: tables, " + fake + "}\n"
    assert run_cases(tmp_path, BOOK + f"        state: {state}\n", head=head)["ok"]


@pytest.fixture
async def real_service() -> AsyncIterator[tuple[str, list[str]]]:
    """A real HTTP service on 127.0.0.1 that records each request: a test must never reach it."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"free": 42})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/api", seen
    await runner.cleanup()


async def test_integrations_never_reach_the_network(
    tmp_path: Path, real_service: tuple[str, list[str]]
) -> None:
    from mcp_engine.config import EngineSettings
    from mcp_engine.flowtest.suite import run_paths
    from mcp_engine.registry import default_registry

    base_url, seen = real_service
    flow = booking()
    flow["integrations"]["tables"]["base_url"] = base_url
    unanswered = "cases:\n" + BOOK.replace("name: case", "name: no fake")
    write_folder(
        tmp_path, [flow], {"booking.test.yaml": TABLES_FREE + "cases:\n" + BOOK, "x.test.yaml": unanswered}
    )
    (tmp_path / "x.test.yaml").write_text("flow: booking\n" + unanswered)
    report = await run_paths([tmp_path], default_registry(), EngineSettings())
    assert [(c.name, c.outcome) for c in report.cases] == [("case", "passed"), ("no fake", "failed")]
    assert seen == []


def test_the_real_client_still_checks_its_configuration(tmp_path: Path) -> None:
    flow = booking()
    flow["integrations"]["tables"]["authentication"] = {"type": "bearer"}
    write_folder(tmp_path, [flow], {"booking.test.yaml": TABLES_FREE + "cases:\n" + BOOK})
    code, report = run_json(tmp_path)
    assert code == 1
    (problem,) = report["problems"]
    assert problem["code"] == "flow-setup"
    assert "bearer authentication needs token" in problem["message"]


def test_each_case_is_a_new_conversation_on_a_new_engine(tmp_path: Path) -> None:
    cases = (
        BOOK
        + "  - name: again\n    turns:\n      - user: fine\n        state: menu\n        slots: {day: null}\n"
    )
    assert run_cases(tmp_path, cases)["summary"]["passed"] == 2


def test_channel_and_user_come_from_the_file_or_the_case(tmp_path: Path) -> None:
    head = TABLES_FREE + "channel: voice\n"
    cases = (
        BOOK
        + """\
      - user: ok
        messages: ["Booked, see you"]
  - name: the case's channel wins
    channel: web
    turns:
      - user: book for tomorrow
      - user: ok
        messages: ["^Booked\\\\.$"]
"""
    )
    assert run_cases(tmp_path, cases, head=head)["summary"]["passed"] == 2


def test_xfail_is_strict(tmp_path: Path) -> None:
    cases = """\
  - name: still broken
    xfail: "issue 99: tomorrow is wrong"
    turns:
      - user: book for tomorrow
        slots: {day: "2026-01-01"}
  - name: fixed meanwhile
    xfail: "issue 98"
    turns:
      - user: book for tomorrow
"""
    write_folder(tmp_path, [booking()], {"booking.test.yaml": TABLES_FREE + "cases:\n" + cases})
    result = run_test(tmp_path)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("XFAIL ")
    assert lines[0].endswith("still broken (issue 99: tomorrow is wrong)")
    assert lines[2].startswith("XPASS ")
    assert lines[3] == "      passed although marked xfail: remove the mark"
    assert lines[-1] == "1 xfailed, 1 xpassed"


def test_a_message_the_engine_refuses_fails_the_turn(tmp_path: Path) -> None:
    flow = booking()
    flow["settings"]["max_message_chars"] = 10
    failure = failure_of(
        tmp_path, "  - name: long\n    turns:\n      - user: book a table for tomorrow\n", flow=flow
    )
    assert failure["field"] == "turn"
    assert failure["got"] == (
        "the engine refused it: invalid_argument: the message is longer than the flow's 10 characters"
    )


def test_json_report_shape_is_stable(tmp_path: Path) -> None:
    report = run_cases(tmp_path, BOOK + "        state: confirm\n")
    assert set(report) == {"ok", "summary", "problems", "cases", "coverage"}
    assert set(report["cases"][0]) == {"file", "name", "outcome", "turns", "xfail", "failure"}
    assert set(report["cases"][0]["failure"]) == {
        "turn",
        "sends",
        "field",
        "expected",
        "got",
        "message",
        "pointer",
        "line",
    }
    assert report["cases"][0]["failure"]["pointer"] == "/cases/0/turns/0/state"
    assert json.loads(json.dumps(report)) == report


def test_a_sub_flow_that_cannot_compile_fails_the_turn_not_the_run(tmp_path: Path) -> None:
    caller = booking()
    caller["states"]["menu"]["transitions"][0]["actions"] = [
        {"type": "trigger_flow", "flow_id": "helper", "return_state": "ask_day"}
    ]
    helper = booking()
    helper["flow_id"] = "helper"
    helper["integrations"]["tables"]["authentication"] = {"type": "bearer"}  # compiled only when entered
    write_folder(tmp_path, [caller, helper], {"booking.test.yaml": TABLES_FREE + "cases:\n" + BOOK})
    code, report = run_json(tmp_path)
    assert code == 1
    failure = report["cases"][0]["failure"]
    assert failure["field"] == "turn"
    assert failure["got"] == ("the engine failed: ValueError: bearer authentication needs token (strings)")

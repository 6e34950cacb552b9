"""Transition and state coverage: counted from the turns' own events, per flow, as a table and as JSON."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mcp_engine.flow.models import Flow
from mcp_engine.flowtest.coverage import Coverage, CoverageReport
from mcp_engine.flowtest.report import render_coverage
from tests.flowtest_kit import TABLES_FREE, booking, run_json, write_folder

EXAMPLES = Path(__file__).parent.parent / "examples" / "flows"


def event(kind: str, flow_id: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "tenant_id": "acme", "flow_id": flow_id, "data": data}


def test_coverage_counts_what_the_events_say() -> None:
    coverage = Coverage()
    flow = Flow.model_validate(booking())
    coverage.include([flow])
    coverage.add(
        [
            event("state_entered", "booking", state="menu"),
            event("transition", "booking", **{"from": "menu", "to": "ask_day", "index": 0}),
            event("state_entered", "booking", state="ask_day"),
            event("state_entered", "other", state="confirm"),  # another flow's state of the same name
            event("transition", "booking", **{"from": "check", "to": "full", "index": 1}),
            event("message_out", "booking", text="hi"),
        ]
    )
    (report,) = coverage.report().flows
    assert (report.states.covered, report.states.total, report.states.percent) == (2, 10, 20.0)
    assert (report.transitions.covered, report.transitions.total) == (2, 9)
    assert "confirm" in report.missed_states
    assert "menu" not in report.missed_states
    assert [(t.state, t.index) for t in report.missed_transitions][:2] == [("ask_day", 0), ("check", 0)]
    assert report.missed_transitions[0].model_dump() == {
        "state": "ask_day",
        "index": 0,
        "target": "check",
        "condition": "slot_filled",
    }


def test_a_flow_without_transitions_is_fully_covered_by_nothing() -> None:
    coverage = Coverage()
    report = coverage.report()
    assert (report.states.percent, report.transitions.percent) == (100.0, 100.0)


def test_sub_flows_are_covered_by_the_tests_of_their_callers(tmp_path: Path) -> None:
    for name in ("support.json", "collect_contact.json", "support.test.yaml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    code, report = run_json(tmp_path)
    assert code == 0, report
    flows = {f["flow_id"]: f for f in report["coverage"]["flows"]}
    assert flows["collect_contact"]["states"] == {"covered": 4, "total": 4, "percent": 100.0}
    assert flows["support"]["missed_states"] == ["oops"]
    assert set(report["coverage"]) == {"flows", "states", "transitions"}
    assert set(flows["support"]) == {
        "tenant_id",
        "flow_id",
        "version",
        "states",
        "transitions",
        "missed_states",
        "missed_transitions",
    }


def test_the_table_lists_what_no_test_exercised(tmp_path: Path) -> None:
    untested = booking()
    untested["flow_id"] = "untested"
    cases = (
        "cases:\n  - name: full\n    fakes: [{integration: tables, status: 404}]\n"
        "    turns:\n      - user: book today\n"
    )
    write_folder(tmp_path, [booking(), untested], {"booking.test.yaml": TABLES_FREE + cases})
    code, report = run_json(tmp_path)
    assert code == 0
    lines = render_coverage(CoverageReport.model_validate(report["coverage"]))
    assert lines == [
        "coverage             states      transitions",
        "acme/booking 1.0.0   4/10 40.0%  3/9 33.3%",
        "  states never entered: confirm, wait_reply, nudge, helping, sorry, done",
        "  transition never taken: check[0] -> confirm (integration_success)",
        "  transition never taken: check[2] -> sorry (integration_error)",
        "  transition never taken: confirm[0] -> wait_reply (expression)",
        "  transition never taken: wait_reply[0] -> nudge (timeout)",
        "  transition never taken: wait_reply[1] -> done (any_input)",
        "  transition never taken: nudge[0] -> wait_reply (expression)",
        "acme/untested 1.0.0  0/10 0.0%   0/9 0.0%",
        "  not tested",
        "total                4/20 20.0%  3/18 16.7%",
    ]

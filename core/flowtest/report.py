"""What a flow test run reports: a line per case, the problems of files that could not run, coverage.

The models are the stable shape of ``mcp-engine test --format json`` and of ``POST /v2/flows/{id}/test``;
``render_text`` is the terminal's view of the same report.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_engine.flow.problems import Problem
from mcp_engine.flowtest.coverage import CoverageReport, FlowCoverage, Ratio

Outcome = Literal["passed", "failed", "xfailed", "xpassed"]
LABELS = {"passed": "PASS", "failed": "FAIL", "xfailed": "XFAIL", "xpassed": "XPASS"}


class Failure(BaseModel):
    """The first expectation a case missed (a case stops at its first failing turn)."""

    turn: int = Field(description="1-based")
    sends: str = Field(description='What the turn sent: user: "...", event: NAME or timeout')
    field: str = Field(
        description="state, flow, messages, intent, slots.NAME, variables.NAME; integration (a call no fake"
        " answers) or turn (the turn did not run)"
    )
    expected: Any = None
    got: Any = None
    message: str
    pointer: str = Field(description="JSON pointer of the turn's expectation in the test file")
    line: int | None = None


class CaseResult(BaseModel):
    file: str | None = Field(description="The test file (null for a REST request)")
    name: str
    outcome: Outcome
    turns: int = Field(description="Turns run (up to and including a failing one)")
    xfail: str | None = None
    failure: Failure | None = None


class FileProblem(BaseModel):
    """A test file, or a flow beside it, that could not be read, validated or run."""

    file: str | None
    pointer: str
    message: str
    code: str
    line: int | None = None

    @classmethod
    def of(cls, file: str | None, problem: Problem) -> FileProblem:
        return cls(
            file=file, pointer=problem.pointer, message=problem.message, code=problem.code, line=problem.line
        )

    def render(self) -> str:
        where = f"{self.file or ''}{f':{self.line}' if self.line else ''}"
        return f"{where}: error: {self.pointer or '/'}: {self.message} [{self.code}]"


class Summary(BaseModel):
    cases: int
    passed: int
    failed: int
    xfailed: int
    xpassed: int
    problems: int


class TestReport(BaseModel):
    __test__ = False

    ok: bool = Field(description="No failed or xpassed case and no problem")
    summary: Summary
    problems: list[FileProblem]
    cases: list[CaseResult]
    coverage: CoverageReport

    @classmethod
    def of(cls, cases: list[CaseResult], problems: list[FileProblem], coverage: CoverageReport) -> TestReport:
        count = {outcome: sum(c.outcome == outcome for c in cases) for outcome in LABELS}
        summary = Summary(cases=len(cases), problems=len(problems), **count)
        ok = not (summary.failed or summary.xpassed or summary.problems)
        return cls(ok=ok, summary=summary, problems=problems, cases=cases, coverage=coverage)


def render_text(report: TestReport) -> str:
    lines = [problem.render() for problem in report.problems]
    for case in report.cases:
        where = f"{case.file}: " if case.file else ""
        reason = f" ({case.xfail})" if case.xfail else ""
        lines.append(f"{LABELS[case.outcome]:<5} {where}{case.name}{reason}")
        if case.failure is not None:
            failure = case.failure
            at = f"{case.file or ''}{f':{failure.line}' if failure.line else ''}"
            prefix = f"{at}: " if at else ""
            lines.append(f"      {prefix}turn {failure.turn} ({failure.sends}): {failure.message}")
        elif case.outcome == "xpassed":
            lines.append("      passed although marked xfail: remove the mark")
    lines += ["", *render_coverage(report.coverage), "", _summary_line(report)]
    return "\n".join(lines)


def render_coverage(coverage: CoverageReport) -> list[str]:
    rows = [("coverage", "states", "transitions")]
    rows += [
        (f"{f.tenant_id}/{f.flow_id} {f.version}", _ratio(f.states), _ratio(f.transitions))
        for f in coverage.flows
    ]
    rows.append(("total", _ratio(coverage.states), _ratio(coverage.transitions)))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = []
    for number, (name, states, transitions) in enumerate(rows):
        lines.append(f"{name:<{widths[0]}}  {states:<{widths[1]}}  {transitions}".rstrip())
        if 0 < number <= len(coverage.flows):
            lines += _missed(coverage.flows[number - 1])
    return lines


def _ratio(ratio: Ratio) -> str:
    return f"{ratio.covered}/{ratio.total} {ratio.percent:.1f}%"


def _missed(flow: FlowCoverage) -> list[str]:
    """What no test exercised (a flow no test entered is one line: listing all of it says nothing)."""
    if not flow.states.covered:
        return ["  not tested"]
    lines = []
    if flow.missed_states:
        lines.append(f"  states never entered: {', '.join(flow.missed_states)}")
    lines += [
        f"  transition never taken: {t.state}[{t.index}] -> {t.target} ({t.condition})"
        for t in flow.missed_transitions
    ]
    return lines


def _summary_line(report: TestReport) -> str:
    summary = report.summary
    parts = [f"{getattr(summary, outcome)} {outcome}" for outcome in LABELS if getattr(summary, outcome)]
    if summary.problems:
        parts.append(f"{summary.problems} problem{'s' if summary.problems != 1 else ''}")
    return ", ".join(parts) or "no cases"

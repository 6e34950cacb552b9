"""Running test cases: each on its own throwaway engine, turn by turn, stopping at the first miss.

A turn fails when the engine refused it, when the flow called an integration no fake answers, or when
an expectation it states differs from what happened (checked in the order state, flow, messages,
intent, slots, variables). A case marked ``xfail`` that fails is ``xfailed``; one that passes is
``xpassed``, which fails the run so the mark is removed once the bug is fixed (pytest's strict xfail).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp_engine.config import EngineSettings
from mcp_engine.flow.problems import pointer
from mcp_engine.flowtest.coverage import Coverage
from mcp_engine.flowtest.fakes import Call
from mcp_engine.flowtest.harness import Clock, Conversation, Done, FlowSet, throwaway_engine
from mcp_engine.flowtest.history import InputKind
from mcp_engine.flowtest.report import CaseResult, Failure, Outcome
from mcp_engine.flowtest.spec import CasesBody, TestCase, TestTurn
from mcp_engine.plugin_manager import Registry

Locate = Callable[[str], tuple[str, int | None]]  # a pointer into the cases -> (pointer, line) in the file
Miss = tuple[str, Any, Any, str]  # field, expected, got, message


async def run_cases(
    body: CasesBody,
    flows: FlowSet,
    registry: Registry,
    settings: EngineSettings,
    coverage: Coverage,
    file: str | None = None,
    locate: Locate | None = None,
) -> list[CaseResult]:
    """Run every case of ``body`` against ``flows``; ``locate`` gives a failure's line in ``file``."""
    results = []
    for number, case in enumerate(body.cases):
        where = f"/cases/{number}"
        results.append(await _run_case(body, case, flows, registry, settings, coverage, file, where, locate))
    return results


async def _run_case(
    body: CasesBody,
    case: TestCase,
    flows: FlowSet,
    registry: Registry,
    settings: EngineSettings,
    coverage: Coverage,
    file: str | None,
    where: str,
    locate: Locate | None,
) -> CaseResult:
    book = flows.integrations()
    clock = Clock(body.clock_for(case))
    failure: Failure | None = None
    ran = 0
    async with throwaway_engine(flows, registry, settings, book, clock) as engine:
        conversation = Conversation(
            engine,
            flows.tenant_id,
            "flow-test",
            clock,
            case.channel or body.channel,
            case.user_id if case.user_id is not None else body.user_id,
        )
        for number, turn in enumerate(case.turns):
            book.fakes = body.fakes_for(case, turn)
            since = len(book.calls)
            done = await conversation.send(*_sent(turn))
            ran += 1
            miss = check(turn, done, book.unanswered(since))
            if miss is not None:
                field, expected, got, message = miss
                at = f"{where}/turns/{number}"
                if field not in ("engine", "integration"):  # else the turn itself: it states no such field
                    at += pointer(*field.split(".", 1))
                at, line = locate(at) if locate is not None else (at, None)
                failure = Failure(
                    turn=number + 1,
                    sends=turn.sends,
                    field=field,
                    expected=expected,
                    got=got,
                    message=message,
                    pointer=at,
                    line=line,
                )
                break
        coverage.add(await conversation.history())
    outcome: Outcome = "failed" if failure else "passed"
    if case.xfail:
        outcome = "xfailed" if failure else "xpassed"
    return CaseResult(
        file=file, name=case.name, outcome=outcome, turns=ran, xfail=case.xfail, failure=failure
    )


def _sent(turn: TestTurn) -> tuple[InputKind, str]:
    if turn.user is not None:
        return "user", turn.user
    return ("event", turn.event) if turn.event is not None else ("timeout", "")


def check(turn: TestTurn, done: Done, unanswered: list[Call]) -> Miss | None:
    """The first expectation of ``turn`` that ``done`` misses, else None."""
    if done.refused is not None:
        return ("engine", None, done.refused, f"the engine refused the turn: {done.refused}")
    if unanswered:
        calls = "; ".join(call.describe() for call in unanswered)
        return ("integration", None, calls, f"no fake answers the call {calls}: declare one under fakes")
    for name in ("state", "flow"):
        expected, got = getattr(turn, name), getattr(done, "flow_id" if name == "flow" else name)
        if expected is not None and expected != got:
            return (name, expected, got, f"{name}: expected '{expected}', got '{got}'")
    if turn.messages is not None:
        miss = _messages(turn, done.messages)
        if miss is not None:
            return miss
    if turn.expects("intent") and turn.intent != done.intent:
        return ("intent", turn.intent, done.intent, f"intent: expected {turn.intent!r}, got {done.intent!r}")
    for part, actual in (("slots", done.slots), ("variables", done.variables)):
        for key, expected in (getattr(turn, part) or {}).items():
            got = actual.get(key)
            if not _same(expected, got):
                return (f"{part}.{key}", expected, got, f"{part}.{key}: expected {expected!r}, got {got!r}")
    return None


def _messages(turn: TestTurn, got: list[dict[str, Any]]) -> Miss | None:
    expected = turn.messages or []
    texts = [str(message.get("text", "")) for message in got]
    if len(expected) != len(got):
        said = " / ".join(f'"{text}"' for text in texts) or "nothing"
        return (
            "messages",
            len(expected),
            texts,
            f"messages: expected {len(expected)}, got {len(got)}: {said}",
        )
    for number, (pattern, message) in enumerate(zip(expected, got, strict=True)):
        if not pattern.matches(message):
            kind = (
                f" ({message.get('type')}, {message.get('attributes') or {}})"
                if pattern.type or pattern.attributes
                else ""
            )
            return (
                "messages",
                pattern.model_dump(exclude_none=True),
                message,
                f'messages[{number}]: /{pattern.text}/ does not match "{message.get("text", "")}"{kind}',
            )
    return None


def _same(expected: Any, got: Any) -> bool:
    """Equality as a designer means it: ``null`` is "not set", and true is not 1."""
    if expected is None:
        return got is None
    if isinstance(expected, bool) or isinstance(got, bool):
        return isinstance(expected, bool) and isinstance(got, bool) and expected == got
    return bool(expected == got)

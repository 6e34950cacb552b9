"""Running test cases: each on its own throwaway engine, turn by turn, stopping at the first miss.

A turn fails when it did not run (the engine refused it; no timeout was armed), when the flow called an
integration no fake answers, or when an expectation it states differs from what happened (checked in
the order state, flow, messages, intent, slots, variables). A case marked ``xfail`` that fails is
``xfailed``; one that passes is ``xpassed``, which fails the run so the mark is removed once the bug is
fixed (pytest's strict xfail).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp_engine.config import EngineSettings
from mcp_engine.flow.problems import pointer
from mcp_engine.flowtest.coverage import Coverage
from mcp_engine.flowtest.fakes import Call
from mcp_engine.flowtest.harness import Clock, Conversation, Done, FlowSet, throwaway_engine
from mcp_engine.flowtest.history import InputKind
from mcp_engine.flowtest.report import CaseResult, Failure, Outcome
from mcp_engine.flowtest.spec import CasesBody, TestCase, TestTurn
from mcp_engine.registry import Registry

Locate = Callable[[str], tuple[str, int | None]]  # a pointer into the cases -> (pointer, line) in the file
Miss = tuple[str, Any, Any, str]  # field, expected, got, message


CONVERSATION_ID = "flow-test"


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
    run = _Run(body, flows, registry, settings, coverage, file, locate or (lambda at: (at, None)))
    return [await run.case(number, case) for number, case in enumerate(body.cases)]


@dataclass
class _Run:
    body: CasesBody
    flows: FlowSet
    registry: Registry
    settings: EngineSettings
    coverage: Coverage
    file: str | None
    locate: Locate

    async def case(self, number: int, case: TestCase) -> CaseResult:
        body, book, clock = self.body, self.flows.fake_book(), Clock(self.body.clock_for(case))
        failure: Failure | None = None
        ran = 0
        async with throwaway_engine(self.flows, self.registry, self.settings, book, clock) as engine:
            conversation = Conversation(
                engine,
                self.flows.tenant_id,
                CONVERSATION_ID,
                clock,
                case.channel or body.channel,
                case.user_id if case.user_id is not None else body.user_id,
            )
            for index, turn in enumerate(case.turns):
                book.fakes = body.fakes_for(case, turn)
                since = len(book.calls)
                done = await conversation.send(*_sent(turn))
                ran += 1
                miss = check(turn, done, book.unanswered(since))
                if miss is not None:
                    failure = self._failure(f"/cases/{number}/turns/{index}", index, turn, miss)
                    break
            self.coverage.add(await conversation.history())
        outcome: Outcome = "failed" if failure else "passed"
        if case.xfail:
            outcome = "xfailed" if failure else "xpassed"
        return CaseResult(
            file=self.file, name=case.name, outcome=outcome, turns=ran, xfail=case.xfail, failure=failure
        )

    def _failure(self, at: str, index: int, turn: TestTurn, miss: Miss) -> Failure:
        field, expected, got, message = miss
        if field not in ("turn", "integration"):  # else the turn itself: it states no such field
            at += pointer(*field.split(".", 1))
        at, line = self.locate(at)
        return Failure(
            turn=index + 1,
            sends=turn.sends,
            field=field,
            expected=expected,
            got=got,
            message=message,
            pointer=at,
            line=line,
        )


def _sent(turn: TestTurn) -> tuple[InputKind, str]:
    if turn.user is not None:
        return "user", turn.user
    return ("event", turn.event) if turn.event is not None else ("timeout", "")


def check(turn: TestTurn, done: Done, unanswered: list[Call]) -> Miss | None:
    """The first expectation of ``turn`` that ``done`` misses, else None."""
    if done.refused is not None:
        return ("turn", None, done.refused, f"the turn did not run: {done.refused}")
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

"""Replay: recorded conversations' inputs run against a candidate flow version, and where they differ.

Each conversation runs on a throwaway engine (``harness``) with the candidate as its tenant's default,
turn by turn with the recorded inputs (user messages, client events, timeouts), each at the moment it was
recorded (the clock follows the recording, so "tomorrow" means what it meant then). A turn differs when
its final state, its flow or its messages (type and text) differ from the recording. The report gives,
per conversation, the first differing turn (recorded vs replayed) and how many more differ: a diff, not a
dump. Integrations are answered by the given fakes; a call no fake answers gets the outcome the recording
had for that integration's call of the same rank when it was an error (a recorded success has no
response body to give back: such a call is reported as unanswered).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_engine.config import EngineSettings
from mcp_engine.contract import IntegrationRequest, IntegrationResult
from mcp_engine.errors import InvalidInput
from mcp_engine.flowtest.fakes import Fallback
from mcp_engine.flowtest.harness import Clock, Conversation, Done, FlowSet, SetupFailed, throwaway_engine
from mcp_engine.flowtest.history import RecordedTurn, turns_of
from mcp_engine.flowtest.spec import Fake
from mcp_engine.registry import Registry


class TurnSide(BaseModel):
    state: str | None
    flow_id: str | None
    messages: list[dict[str, str]] = Field(description="Each {type, text}")


class Difference(BaseModel):
    turn: int = Field(description="1-based")
    sends: str
    fields: list[Literal["state", "flow", "messages"]]
    recorded: TurnSide
    replayed: TurnSide
    refused: str | None = Field(None, description="Why the candidate refused the turn, if it did")


class ConversationReplay(BaseModel):
    conversation_id: str
    outcome: Literal["same", "differs", "skipped"]
    turns: int
    first_difference: Difference | None = None
    further_differences: int = Field(0, description="Differing turns after the first")
    unanswered_calls: list[str] = Field(default_factory=list, description="Integration calls with no answer")
    note: str | None = None


class ReplaySummary(BaseModel):
    conversations: int
    same: int
    differs: int
    skipped: int


class ReplayReport(BaseModel):
    tenant_id: str
    flow_id: str
    version: str
    summary: ReplaySummary
    conversations: list[ConversationReplay]

    @classmethod
    def of(cls, flows: FlowSet, results: list[ConversationReplay]) -> ReplayReport:
        count = {o: sum(r.outcome == o for r in results) for o in ("same", "differs", "skipped")}
        summary = ReplaySummary(conversations=len(results), **count)
        version = str(flows.main["version"])
        return cls(
            tenant_id=flows.tenant_id,
            flow_id=flows.flow_id,
            version=version,
            summary=summary,
            conversations=results,
        )


async def replay(
    histories: dict[str, list[dict[str, Any]]],
    flows: FlowSet,
    registry: Registry,
    settings: EngineSettings,
    fakes: Sequence[Fake] = (),
    channel: str = "default",
) -> ReplayReport:
    """Replay each conversation (its events, oldest first) against ``flows``' main flow; ``InvalidInput``
    when the candidate cannot even be published (a client's configuration that fails to compile)."""
    results = []
    try:
        for conversation_id, events in histories.items():
            results.append(
                await _replay_one(conversation_id, events, flows, registry, settings, fakes, channel)
            )
    except SetupFailed as exc:
        raise InvalidInput(str(exc), {"flow_id": flows.flow_id}) from None
    return ReplayReport.of(flows, results)


async def _replay_one(
    conversation_id: str,
    events: list[dict[str, Any]],
    flows: FlowSet,
    registry: Registry,
    settings: EngineSettings,
    fakes: Sequence[Fake],
    channel: str,
) -> ConversationReplay:
    recorded = turns_of(events)
    skipped = _skip_reason(events, recorded, flows)
    if skipped is not None:
        return ConversationReplay(conversation_id=conversation_id, outcome="skipped", turns=0, note=skipped)
    book = flows.fake_book()
    book.fakes = list(fakes)
    book.fallback = _recorded_outcomes(events)
    clock = Clock(_recorded_at(recorded[0]))
    differences: list[Difference] = []
    async with throwaway_engine(flows, registry, settings, book, clock) as engine:
        conversation = Conversation(engine, flows.tenant_id, conversation_id, clock, channel, "replay")
        for number, turn in enumerate(recorded):
            clock.advance_to(_recorded_at(turn) or 0.0)
            done = await conversation.send(turn.input.kind, turn.input.text)
            difference = _compare(number, turn, done)
            if difference is not None:
                differences.append(difference)
    return ConversationReplay(
        conversation_id=conversation_id,
        outcome="differs" if differences else "same",
        turns=len(recorded),
        first_difference=differences[0] if differences else None,
        further_differences=max(len(differences) - 1, 0),
        unanswered_calls=[call.describe() for call in book.unanswered()],
    )


def _recorded_at(turn: RecordedTurn) -> float | None:
    """When the turn ran (its first event's time), or None when the export has no times."""
    ts = turn.events[0].get("ts")
    return float(ts) if isinstance(ts, int | float) else None


def _skip_reason(events: list[dict[str, Any]], recorded: list[RecordedTurn], flows: FlowSet) -> str | None:
    if not events:
        return "no history (an unknown conversation, or another tenant's)"
    if not recorded:
        return "no recorded turns (no message_in or event_in events)"
    root = events[0].get("flow_id")
    if root != flows.flow_id:
        return f"recorded on flow '{root}', not '{flows.flow_id}'"
    return None


def _compare(number: int, recorded: RecordedTurn, done: Done) -> Difference | None:
    replayed = TurnSide(
        state=done.state,
        flow_id=done.flow_id,
        messages=[
            {"type": str(m.get("type", "text")), "text": str(m.get("text", ""))} for m in done.messages
        ],
    )
    before = TurnSide(state=recorded.state, flow_id=recorded.flow_id, messages=recorded.messages)
    fields: list[Literal["state", "flow", "messages"]] = []
    if before.state != replayed.state:
        fields.append("state")
    if before.flow_id != replayed.flow_id:
        fields.append("flow")
    if before.messages != replayed.messages:
        fields.append("messages")
    if not fields:
        return None
    return Difference(
        turn=number + 1,
        sends=recorded.input.describe(),
        fields=fields,
        recorded=before,
        replayed=replayed,
        refused=done.refused,
    )


def _recorded_outcomes(events: list[dict[str, Any]]) -> Fallback:
    """Answer the n-th call of an integration with the n-th recorded call's error, if it was one."""
    recorded: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
    for event in events:
        if event.get("type") == "integration_call":
            data = event.get("data") or {}
            recorded[str(data.get("integration_id"))].append(data)

    def answer(ids: frozenset[str], request: IntegrationRequest) -> IntegrationResult | None:
        queue = next((recorded[i] for i in sorted(ids) if recorded[i]), None)
        if not queue:
            return None
        call = queue.popleft()
        if call.get("outcome") != "error":
            return None
        kind = str(call.get("error") or "network")
        return IntegrationResult(ok=False, error=kind, message=f"recorded: {kind}", status=call.get("status"))

    return answer


def render_text(report: ReplayReport) -> str:
    summary = report.summary
    lines = [
        f"replay against {report.tenant_id}/{report.flow_id} {report.version}: "
        f"{_count(summary.conversations, 'conversation')}, {summary.same} the same, "
        f"{summary.differs} differ, {summary.skipped} skipped"
    ]
    for result in report.conversations:
        if result.outcome == "skipped":
            lines.append(f"{result.conversation_id}: skipped: {result.note}")
            continue
        difference = result.first_difference
        if difference is None:
            lines.append(f"{result.conversation_id}: the same ({_count(result.turns, 'turn')})")
        else:
            lines.append(
                f"{result.conversation_id}: differs from turn {difference.turn} of {result.turns} "
                f"({difference.sends})"
            )
            lines += _render_difference(difference)
            if result.further_differences:
                lines.append(f"    and {_count(result.further_differences, 'more turn')} differ")
        if result.unanswered_calls:
            lines.append(f"    unanswered integration calls: {'; '.join(result.unanswered_calls)}")
    return "\n".join(lines)


def _render_difference(difference: Difference) -> list[str]:
    lines = []
    if difference.refused:
        lines.append(f"    refused   {difference.refused}")
    if "state" in difference.fields:
        lines.append(
            f"    state     recorded {difference.recorded.state}, replayed {difference.replayed.state}"
        )
    if "flow" in difference.fields:
        lines.append(
            f"    flow      recorded {difference.recorded.flow_id}, replayed {difference.replayed.flow_id}"
        )
    if "messages" in difference.fields:
        for label, side in (("recorded", difference.recorded), ("replayed", difference.replayed)):
            said = " / ".join(_said(m) for m in side.messages) or "nothing"
            lines.append(f"    {'messages' if label == 'recorded' else '':<9} {label}: {said}")
    return lines


def _said(message: dict[str, str]) -> str:
    kind = message.get("type", "text")
    return f'"{message.get("text", "")}"' + (f" ({kind})" if kind != "text" else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

"""A conversation's history as turns: read through the Store contract (or from an export), then cut.

Every turn records one input event: ``message_in`` (a user message) or ``event_in`` (a client event or a
server timeout, which also ends with ``timer_fired``). A turn that starts a new run first records the
run's entry (its initial state's messages and transitions) under the new run's id, just before its input,
so the events before an input belong to it exactly when they carry its run id and the previous turn's
input did not. That is the whole rule: no timing, no guessing from state names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_engine.errors import InvalidInput
from mcp_engine.store.base import Store

PAGE = 500
MAX_EVENTS = 100_000  # a conversation longer than this is cut (and said so), never loaded unbounded
InputKind = Literal["user", "event", "timeout"]


@dataclass
class Input:
    kind: InputKind
    text: str = ""

    def describe(self) -> str:
        return {"user": f'user: "{self.text}"', "event": f"event: {self.text}", "timeout": "timeout"}[
            self.kind
        ]


@dataclass
class RecordedTurn:
    """One turn as its events tell it: what came in, what went out, where the conversation was after."""

    input: Input
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def messages(self) -> list[dict[str, str]]:
        return [
            {"type": str(e["data"].get("type", "text")), "text": str(e["data"].get("text", ""))}
            for e in self.events
            if e.get("type") == "message_out"
        ]

    @property
    def state(self) -> str | None:
        return self.events[-1].get("state") if self.events else None

    @property
    def flow_id(self) -> str | None:
        return self.events[-1].get("flow_id") if self.events else None


async def read_history(
    store: Store, tenant_id: str, conversation_id: str, limit: int = MAX_EVENTS
) -> list[dict[str, Any]]:
    """Every event of one conversation, oldest first, page by page through ``Store.history``."""
    newest_first: list[dict[str, Any]] = []
    before: int | None = None
    while len(newest_first) < limit:
        page = await store.history(tenant_id, conversation_id, min(PAGE, limit - len(newest_first)), before)
        newest_first.extend(page)
        if len(page) < PAGE:
            break
        before = page[-1]["seq"]
    return newest_first[::-1]


async def read_histories(
    store: Store, tenant_id: str, conversation_ids: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each conversation's events, oldest first, by id (an unknown one, or another tenant's, has none)."""
    return {cid: await read_history(store, tenant_id, cid) for cid in dict.fromkeys(conversation_ids)}


def _input_of(event: dict[str, Any]) -> Input | None:
    data = event.get("data") or {}
    if event.get("type") == "message_in":
        return Input("user", str(data.get("text", "")))
    if event.get("type") == "event_in":
        return Input("event", str(data.get("text") or data.get("event") or ""))
    return None


def turns_of(events: Sequence[dict[str, Any]]) -> list[RecordedTurn]:
    """Cut a conversation's events (oldest first) into its turns."""
    starts: list[tuple[int, Input]] = []
    previous_run: object = None
    for index, event in enumerate(events):
        found = _input_of(event)
        if found is None:
            continue
        start = index
        if event.get("run") != previous_run:  # a new run: its entry events came just before the input
            floor = starts[-1][0] + 1 if starts else 0
            while start > floor and events[start - 1].get("run") == event.get("run"):
                start -= 1
        starts.append((start, found))
        previous_run = event.get("run")
    turns: list[RecordedTurn] = []
    for number, (start, found) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(events)
        turn = RecordedTurn(found, list(events[start:end]))
        if found.kind == "event" and any(e.get("type") == "timer_fired" for e in turn.events):
            turn.input = Input("timeout", "timeout")
        turns.append(turn)
    return turns


def conversations_of_export(data: Any, where: str) -> dict[str, list[dict[str, Any]]]:
    """Histories from exported JSON, by conversation id, each oldest first.

    Accepts what ``GET /v2/conversations/{id}/history`` returns (``{"conversation_id", "events"}``, newest
    first), several of them in a list (pages of one conversation are merged by ``seq``), or
    ``{"conversations": [...]}`` (what ``mcp-engine export`` writes).
    """
    pages = data.get("conversations") if isinstance(data, dict) and "conversations" in data else data
    pages = [pages] if isinstance(pages, dict) else pages
    if not isinstance(pages, list):
        raise InvalidInput(f"{where}: expected a history page, a list of them or {{'conversations': [...]}}")
    merged: dict[str, dict[int, dict[str, Any]]] = {}
    for number, page in enumerate(pages):
        if not (
            isinstance(page, dict)
            and isinstance(page.get("conversation_id"), str)
            and isinstance(page.get("events"), list)
        ):
            raise InvalidInput(f"{where}: item {number} is not a history page (conversation_id and events)")
        events = merged.setdefault(page["conversation_id"], {})
        for position, event in enumerate(_events(page["events"], f"{where}: item {number}")):
            seq = event.get("seq", -position)  # without seqs, a page's order (newest first) is kept
            events[seq if isinstance(seq, int) else -position] = event
    return {cid: [events[seq] for seq in sorted(events)] for cid, events in merged.items()}


def _events(events: Iterable[Any], where: str) -> Iterable[dict[str, Any]]:
    for position, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise InvalidInput(f"{where}, event {position}: not an event (an object with a type)")
        yield event

"""What a batch of analytics events adds to the counts of the experiment runs it belongs to.

Both stores keep one row per experiment run (``experiment_runs``) next to the events, updated in the same
transaction as the events are appended (a turn's commit, or ``Store.record_events``), so an experiment's
results are one aggregate over its runs (``Store.experiment_counts``) however many events those runs had.
Only events of experiment runs are looked at; everything here is order-free (sums, the earliest time, the
completion's own turn count), so batches from several engine processes may arrive in any order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class RunTally:
    tenant_id: str
    experiment_id: str
    run: str
    variant: str
    conversation_id: str
    first_seen: float
    turns: int = 0
    no_matches: int = 0
    completed_at: float | None = None
    turns_to_complete: int | None = None

    def row(self) -> tuple[Any, ...]:
        return (
            self.tenant_id,
            self.experiment_id,
            self.run,
            self.variant,
            self.conversation_id,
            self.first_seen,
            self.turns,
            self.no_matches,
            self.completed_at,
            self.turns_to_complete,
        )


def tally_runs(events: Iterable[Mapping[str, Any]], turn: tuple[str, str] | None = None) -> list[RunTally]:
    """One tally per (tenant, experiment, run) among ``events``: turns are ``message_in`` events, a
    completion is ``run_completed`` (carrying the run's turn count in ``data.turns``). ``turn``: the
    (tenant, conversation) of the turn whose events these are, which they belong to whatever they say."""
    tallies: dict[tuple[str, str, str], RunTally] = {}
    for event in events:
        experiment_id = event.get("experiment_id")
        if not isinstance(experiment_id, str):
            continue
        tenant_id, conversation_id = turn or (event["tenant_id"], event.get("conversation_id"))
        key = (str(tenant_id), experiment_id, str(event.get("run") or ""))
        ts = float(event.get("ts") or 0.0)
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = RunTally(
                *key, str(event.get("variant") or ""), str(conversation_id or ""), ts
            )
        tally.first_seen = min(tally.first_seen, ts)
        kind = event.get("type")
        if kind == "message_in":
            tally.turns += 1
        elif kind == "no_match":
            tally.no_matches += 1
        elif kind == "run_completed":
            data = event.get("data") or {}
            tally.completed_at = ts
            tally.turns_to_complete = int(data.get("turns") or 0)
    return list(tallies.values())

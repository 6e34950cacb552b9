"""Transition and state coverage, read from the events the turns recorded themselves.

A ``state_entered`` event covers its state, a ``transition`` event (``from``, ``to``, ``index``) covers
that transition, each in the flow the event names. Nothing instruments the turn: what the history says
happened is what counted. The denominators are every state and every declared transition of each flow
the tests could reach (the flows beside the test files), so a flow no test enters shows 0 %.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from mcp_engine.flow.models import Flow

Key = tuple[str, str]  # (tenant_id, flow_id)


class MissedTransition(BaseModel):
    state: str = Field(description="The state the transition leaves")
    index: int = Field(description="Its position in the state's transitions (0-based)")
    target: str
    condition: str


class Ratio(BaseModel):
    covered: int
    total: int
    percent: float = Field(description="covered / total * 100, one decimal (100.0 when total is 0)")

    @classmethod
    def of(cls, covered: int, total: int) -> Ratio:
        return cls(covered=covered, total=total, percent=round(100 * covered / total, 1) if total else 100.0)


class FlowCoverage(BaseModel):
    tenant_id: str
    flow_id: str
    version: str
    states: Ratio
    transitions: Ratio
    missed_states: list[str]
    missed_transitions: list[MissedTransition]


class CoverageReport(BaseModel):
    flows: list[FlowCoverage] = Field(description="By tenant and flow id")
    states: Ratio = Field(description="Over every flow")
    transitions: Ratio = Field(description="Over every flow")


class Coverage:
    """What the runs covered, per flow; ``add`` the events of each finished conversation."""

    def __init__(self) -> None:
        self._flows: dict[Key, Flow] = {}
        self._states: set[tuple[str, str, str]] = set()
        self._transitions: set[tuple[str, str, str, int]] = set()

    def include(self, flows: Iterable[Flow]) -> None:
        for flow in flows:
            self._flows.setdefault((flow.tenant_id, flow.flow_id), flow)

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            tenant, flow, data = (
                str(event.get("tenant_id")),
                str(event.get("flow_id")),
                event.get("data") or {},
            )
            if event.get("type") == "state_entered":
                self._states.add((tenant, flow, str(data.get("state"))))
            elif event.get("type") == "transition" and isinstance(data.get("index"), int):
                self._transitions.add((tenant, flow, str(data.get("from")), data["index"]))

    def report(self) -> CoverageReport:
        flows = [self._flow(key, flow) for key, flow in sorted(self._flows.items())]
        return CoverageReport(
            flows=flows,
            states=Ratio.of(sum(f.states.covered for f in flows), sum(f.states.total for f in flows)),
            transitions=Ratio.of(
                sum(f.transitions.covered for f in flows), sum(f.transitions.total for f in flows)
            ),
        )

    def _flow(self, key: Key, flow: Flow) -> FlowCoverage:
        missed_states = [name for name in flow.states if (*key, name) not in self._states]
        declared = [
            MissedTransition(
                state=name, index=index, target=transition.target_state, condition=transition.condition
            )
            for name, state in flow.states.items()
            for index, transition in enumerate(state.transitions)
        ]
        missed = [t for t in declared if (*key, t.state, t.index) not in self._transitions]
        return FlowCoverage(
            tenant_id=flow.tenant_id,
            flow_id=flow.flow_id,
            version=flow.version,
            states=Ratio.of(len(flow.states) - len(missed_states), len(flow.states)),
            transitions=Ratio.of(len(declared) - len(missed), len(declared)),
            missed_states=missed_states,
            missed_transitions=missed,
        )

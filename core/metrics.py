"""Prometheus metrics of one engine (SPEC §8), rendered at ``GET /metrics``.

Each ``Metrics`` owns its ``CollectorRegistry``: two engines in one process (tests, embedding) never
share or clash over series. The turn is the hot path, so label children are looked up once and cached
in plain dicts keyed by flow id and state type (``.labels()`` takes a lock and builds a tuple on
every call); a turn then only pays a dict lookup and an ``observe``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from mcp_engine.runtime.breaker import STATE_VALUES, BreakerState

# Turns take ~1 ms on the embedded store and up to seconds with a slow integration.
TURN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STEP_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
STORE_OPERATIONS = ("begin", "commit")  # a turn's two store calls (Store.begin_turn, its commit)


class StateMetrics:
    """The children of one (flow, state type): state execution and transition evaluation time."""

    __slots__ = ("execution", "transitions")

    def __init__(self, metrics: Metrics, flow_id: str, state_type: str) -> None:
        self.execution = metrics.state_execution.labels(flow_id, state_type)
        self.transitions = metrics.transition_evaluation.labels(flow_id, state_type)


class FlowMetrics:
    """The children of one flow, and its state types' children made on first use."""

    __slots__ = (
        "_metrics",
        "_states",
        "completions",
        "flow_id",
        "messages_in",
        "messages_out",
        "no_matches",
        "turn",
    )

    def __init__(self, metrics: Metrics, flow_id: str) -> None:
        self._metrics = metrics
        self._states: dict[str, StateMetrics] = {}
        self.flow_id = flow_id
        self.turn = metrics.turn_latency.labels(flow_id)
        self.messages_in = metrics.messages.labels(flow_id, "in")
        self.messages_out = metrics.messages.labels(flow_id, "out")
        self.no_matches = metrics.no_matches.labels(flow_id)
        self.completions = metrics.run_completions.labels(flow_id)

    def state(self, state_type: str) -> StateMetrics:
        found = self._states.get(state_type)
        if found is None:
            found = self._states[state_type] = StateMetrics(self._metrics, self.flow_id, state_type)
        return found


class Metrics:
    def __init__(self, service: str = "mcp-engine") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        # ``mcp_engine_info{service="..."} 1``: which deployment (SERVICE_NAME) a scrape came from
        Info("mcp_engine", "The engine's service name (SERVICE_NAME)", registry=r).info({"service": service})
        self.turn_latency = Histogram(
            "mcp_turn_latency_seconds",
            "Turn latency, lock to reply",
            ["flow"],
            registry=r,
            buckets=TURN_BUCKETS,
        )
        self.state_execution = Histogram(
            "mcp_state_execution_seconds",
            "Time a state type spends entering, receiving and responding",
            ["flow", "state_type"],
            registry=r,
            buckets=STEP_BUCKETS,
        )
        self.transition_evaluation = Histogram(
            "mcp_transition_evaluation_seconds",
            "Time to evaluate a state's transitions (facts + ruleset)",
            ["flow", "state_type"],
            registry=r,
            buckets=STEP_BUCKETS,
        )
        self.messages = Counter("mcp_messages", "Messages in and out", ["flow", "direction"], registry=r)
        self.no_matches = Counter(
            "mcp_no_matches", "Messages no transition or handler matched", ["flow"], registry=r
        )
        self.errors = Counter(
            "mcp_errors",
            "Errors: kind 'request' by error code, 'turn' by runtime error kind",
            ["kind", "code"],
            registry=r,
        )
        self.integration_calls = Counter(
            "mcp_integration_calls", "Integration calls by outcome", ["integration", "outcome"], registry=r
        )
        self.integration_latency = Histogram(
            "mcp_integration_call_seconds",
            "Integration call latency, retries included",
            ["integration", "outcome"],
            registry=r,
            buckets=TURN_BUCKETS,
        )
        self.breaker_state = Gauge(
            "mcp_circuit_breaker_state",
            "Circuit breaker state as last seen by this process: 0 closed, 1 half-open, 2 open",
            ["integration"],
            registry=r,
        )
        self.breaker_rejected = Counter(
            "mcp_circuit_breaker_rejected",
            "Calls an open circuit breaker failed at once (circuit_open)",
            ["integration"],
            registry=r,
        )
        self.run_completions = Counter(
            "mcp_run_completions", "Runs that reached an end state", ["flow"], registry=r
        )
        self.lock_wait = Histogram(
            "mcp_lock_wait_seconds",
            "Time to hold the conversation lock, with the context read that comes with it",
            registry=r,
            buckets=STEP_BUCKETS,
        )
        self.store_latency = Histogram(
            "mcp_store_seconds",
            "Store call latency in a turn",
            ["operation"],
            registry=r,
            buckets=STEP_BUCKETS,
        )
        self.store = {op: self.store_latency.labels(op) for op in STORE_OPERATIONS}
        self.experiment_conversations = Counter(
            "mcp_experiment_conversations",
            "Runs allocated to an experiment's variant (exposures)",
            ["experiment", "variant"],
            registry=r,
        )
        self.experiment_completions = Counter(
            "mcp_experiment_completions",
            "Runs of an experiment's variant that reached an end state",
            ["experiment", "variant"],
            registry=r,
        )
        self._experiments: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._flows: dict[str, FlowMetrics] = {}
        self._errors: dict[str, dict[str, Any]] = {"request": {}, "turn": {}}
        self._integrations: dict[str, dict[str, tuple[Any, Any]]] = {}
        self._breakers: dict[str, tuple[Any, Any]] = {}

    def flow(self, flow_id: str) -> FlowMetrics:
        found = self._flows.get(flow_id)
        if found is None:
            found = self._flows[flow_id] = FlowMetrics(self, flow_id)
        return found

    def error(self, kind: str, code: str) -> None:
        """Count an error: ``kind`` "request" (an ``EngineError`` code) or "turn" (SPEC §5 runtime kind)."""
        children = self._errors.setdefault(kind, {})
        child = children.get(code)
        if child is None:
            child = children[code] = self.errors.labels(kind, code)
        child.inc()

    def observe_turn(self, flow_id: str, events: Sequence[dict[str, Any]], seconds: float | None) -> None:
        """Count what a finished turn recorded, in one pass over its events (no extra hooks in the turn):
        messages, no-matches, runtime errors, integration calls, run completions, experiment exposures
        and completions by experiment and variant; and its latency."""
        flow = self.flow(flow_id)
        if seconds is not None:
            flow.turn.observe(seconds)
        for event in events:
            kind = event["type"]
            if kind == "message_in":
                flow.messages_in.inc()
            elif kind == "message_out":
                flow.messages_out.inc()
            elif kind == "no_match":
                flow.no_matches.inc()
            elif kind == "error":
                self.error("turn", str(event["data"].get("kind", "unknown")))
            elif kind == "run_completed":
                flow.completions.inc()
                if "experiment_id" in event:
                    self._experiment(event)[1].inc()
            elif kind == "integration_call":
                self._integration(event["data"])
            elif kind == "experiment_exposure":
                self._experiment(event)[0].inc()

    def _experiment(self, event: dict[str, Any]) -> tuple[Any, Any]:
        """The (conversations, completions) children of an experiment run's variant."""
        key = (str(event["experiment_id"]), str(event["variant"]))
        children = self._experiments.get(key)
        if children is None:
            children = self._experiments[key] = (
                self.experiment_conversations.labels(*key),
                self.experiment_completions.labels(*key),
            )
        return children

    def _integration(self, data: dict[str, Any]) -> None:
        name, outcome = str(data.get("integration_id")), str(data.get("outcome"))
        by_outcome = self._integrations.setdefault(name, {})
        children = by_outcome.get(outcome)
        if children is None:
            children = by_outcome[outcome] = (
                self.integration_calls.labels(name, outcome),
                self.integration_latency.labels(name, outcome),
            )
        children[0].inc()
        children[1].observe(float(data.get("latency_ms") or 0) / 1000)

    def breaker_observed(self, label: str, state: BreakerState, rejected: bool) -> None:
        """A breaker's decision (``BreakerObserver``): its state, and a call it rejected."""
        children = self._breakers.get(label)
        if children is None:
            children = self._breakers[label] = (
                self.breaker_state.labels(label),
                self.breaker_rejected.labels(label),
            )
        children[0].set(STATE_VALUES[state])
        if rejected:
            children[1].inc()

    def render(self) -> bytes:
        """Everything in the Prometheus text exposition format."""
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /metrics``."""
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

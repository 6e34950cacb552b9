"""Transition selection: events/s and µs per event of the python and durable backends on the same rulesets.

Three workloads: a 4-transition state, a 50-transition state (mostly intent_match, where the python
backend's intent index matters) and a 1,000-state generated flow with events spread over its states.
The facts of every event are built once, before timing (the builder is shared by both backends, and
its cost is reported apart); each backend then selects for the same events, repeated, and must agree.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.generated import generated_flow
from benchmarks.report import Section, Target
from mcp_engine.flow.models import Flow
from mcp_engine.registry import default_registry
from mcp_engine.rulesets import BACKENDS, Evaluator, Facts, Phase, StateRuleset, compile_flow, get_backend

TARGET_RATIO = 4.0
Event = tuple[str, Facts]  # (state, facts)
Inputs = tuple[str, Phase, dict[str, Any] | None, dict[str, Any] | None, dict[str, Any]]


def _flow(states: dict[str, Any], intents: list[str]) -> Flow:
    return Flow.model_validate(
        {
            "flow_id": "bench",
            "tenant_id": "bench",
            "name": "bench",
            "version": "1.0.0",
            "initial_state": next(iter(states)),
            "intents": {name: {"examples": [name]} for name in intents},
            "states": states,
        }
    )


def _intent_state(intents: list[str], extra: list[dict[str, Any]]) -> dict[str, Any]:
    matches = [{"condition": "intent_match", "condition_value": i, "target_state": "s"} for i in intents]
    return {"type": "intent", "config": {}, "transitions": matches + extra}


def _small() -> tuple[Flow, list[str]]:
    intents = ["order", "help"]
    extra: list[dict[str, Any]] = [
        {"condition": "low_confidence", "target_state": "s", "priority": 50},
        {
            "condition": "expression",
            "expression": "slots.size == 'large' and slots.count >= 2",
            "target_state": "s",
        },
    ]
    return _flow({"s": _intent_state(intents, extra)}, intents), intents


def _large() -> tuple[Flow, list[str]]:
    intents = [f"intent_{i}" for i in range(46)]
    extra: list[dict[str, Any]] = [
        {
            "condition": "expression",
            "expression": "variables.vip == true",
            "target_state": "s",
            "priority": 5,
        },
        {"condition": "expression", "expression": "slots.count > 10", "target_state": "s", "priority": 20},
        {"condition": "expression", "expression": "slots.size in ['xl', 'xxl']", "target_state": "s"},
        {"condition": "low_confidence", "target_state": "s", "priority": 50},
    ]
    return _flow({"s": _intent_state(intents, extra)}, intents), intents


def _inputs(flow: Flow, intents: list[str], count: int) -> list[Inputs]:
    """Events over random states: a classified message where the state waits for one, else an entry."""
    rng = random.Random(7)
    states = list(flow.states)
    inputs: list[Inputs] = []
    for _ in range(count):
        state = rng.choice(states)
        waits = flow.states[state].type in ("intent", "slot_filling", "wait")
        intent = {"name": rng.choice([*intents, "unknown"]), "confidence": rng.uniform(0.3, 1.0)}
        slots = {f"slot_{rng.randrange(1000)}": rng.randrange(100), "size": rng.choice(["large", "xl", "s"])}
        slots["count"] = rng.randrange(15)
        namespace = {
            "slots": slots,
            "variables": {"vip": rng.random() < 0.05, "step": "s1"},
            "intent": intent,
        }
        if waits:
            inputs.append((state, "input", {"type": "message", "text": "hi"}, intent, namespace))
        else:
            inputs.append((state, "entry", None, None, namespace))
    return inputs


def _build(rulesets: dict[str, StateRuleset], inputs: list[Inputs]) -> tuple[list[Event], list[int]]:
    """Each event's facts, and the ns each took to build."""
    clock = time.perf_counter_ns
    events, samples = [], []
    for state, phase, event, intent, namespace in inputs:
        start = clock()
        facts = rulesets[state].facts(phase, event, intent, None, namespace)
        samples.append(clock() - start)
        events.append((state, facts))
    return events, samples


def _time(calls: Sequence[tuple[Callable[[Facts], int | None], Facts]]) -> tuple[list[int], list[int | None]]:
    clock = time.perf_counter_ns
    samples, chosen = [], []
    for select, facts in calls:
        start = clock()
        index = select(facts)
        samples.append(clock() - start)
        chosen.append(index)
    return samples, chosen


def _percentile(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3


def _measure(
    rulesets: dict[str, StateRuleset], events: list[Event], repetitions: int
) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    choices: dict[str, list[int | None]] = {}
    for name in BACKENDS:
        started = time.perf_counter()
        evaluators: dict[str, Evaluator] = {state: get_backend(name).load(r) for state, r in rulesets.items()}
        load_s = time.perf_counter() - started
        calls = [(evaluators[state].select, facts) for state, facts in events]
        _time(calls)  # warm up
        rates, pooled = [], []
        for _ in range(repetitions):
            samples, choices[name] = _time(calls)
            rates.append(len(samples) / (sum(samples) / 1e9))
            pooled += samples
        for evaluator in evaluators.values():
            evaluator.close()
        figures[name] = {
            "events_per_s": statistics.median(rates),
            "low": min(rates),
            "high": max(rates),
            "p50_us": _percentile(pooled, 0.50),
            "p99_us": _percentile(pooled, 0.99),
            "load_s": load_s,
        }
    agree = choices["python"] == choices["durable"]
    figures["ratio"] = {
        "python_over_durable": figures["python"]["events_per_s"] / figures["durable"]["events_per_s"]
    }
    figures["agree"] = {"same_transitions": agree, "events": len(events)}
    return figures


def run(quick: bool = False) -> Section:
    registry = default_registry()
    count, repetitions = (1_000, 2) if quick else (10_000, 5)
    generated = Flow.model_validate(generated_flow(1_000))
    workloads = {
        "4 transitions": _small(),
        "50 transitions": _large(),
        "1,000-state flow": (generated, list(generated.intents)),
    }
    rows, targets, figures = [], [], {}
    notes = [
        f"{count:,} events per repetition, built before timing; the facts builder is shared by both backends."
    ]
    for label, (flow, intents) in workloads.items():
        rulesets = compile_flow(flow, registry)
        events, build = _build(rulesets, _inputs(flow, intents, count))
        result = _measure(rulesets, events, repetitions)
        result["facts"] = {"p50_us": _percentile(build, 0.50), "p99_us": _percentile(build, 0.99)}
        figures[label] = result
        notes.append(
            f"{label}: building the facts took p50 {result['facts']['p50_us']:.1f} µs, "
            f"p99 {result['facts']['p99_us']:.1f} µs per event; loading took "
            + ", ".join(f"{name} {result[name]['load_s'] * 1e3:.1f} ms" for name in BACKENDS)
        )
        ratio = result["ratio"]["python_over_durable"]
        for name in BACKENDS:
            r = result[name]
            rows.append(
                [
                    label,
                    name,
                    f"{r['events_per_s']:,.0f} ({r['low']:,.0f}-{r['high']:,.0f})",
                    f"{r['p50_us']:.1f}",
                    f"{r['p99_us']:.1f}",
                    f"{ratio:.1f}x" if name == "python" else "",
                ]
            )
        targets.append(
            Target(f"{label}: python ≥ {TARGET_RATIO:.0f}x durable", f"{ratio:.1f}x", ratio >= TARGET_RATIO)
        )
        targets.append(
            Target(
                f"{label}: both backends chose the same transitions",
                str(count),
                result["agree"]["same_transitions"],
            )
        )
    return Section(
        "Transition selection: python vs durable backend",
        [
            "workload",
            "backend",
            f"events/s (median, min-max of {repetitions})",
            "p50 µs",
            "p99 µs",
            "python/durable",
        ],
        rows,
        targets,
        notes=notes,
        figures=figures,
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]).markdown())

"""Both rules backends choose the same transition as a brute-force reference, every time.

(a) every case of ``examples/scenarios/*.yaml`` on its example flow, which must also match ``expect``;
(b) generated states mixing every built-in condition, expressions that push down and that do not,
priorities with ties, and facts of mixed types (ints, floats incl. NaN and infinities, bools, strings
with escapes, None, missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_engine.flow.models import Flow
from mcp_engine.rulesets import compile_flow, compile_state, get_backend
from tests.test_rulesets import REGISTRY, flow_of, reference

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "examples" / "scenarios").glob("*.yaml"))
BACKENDS = ("python", "durable")


def scenario_inputs(flow: Flow, case: dict[str, Any]) -> dict[str, Any]:
    """What the engine would pass for a case: the event, intent, integration and the namespace."""
    namespace = {
        "slots": case.get("slots", {}),
        "variables": {**flow.variables, **case.get("variables", {})},
        "user_profile": case.get("user_profile", {}),
        "intent": case.get("intent") or {},
        "event": case.get("event") or {},
        "integration_results": case.get("integration_results", {}),
        "context": case.get("context", {}),
        "slot_filling": case.get("slot_filling", {}),
    }
    return {
        "event": case.get("event"),
        "intent": case.get("intent"),
        "integration": case.get("integration"),
        "namespace": namespace,
    }


@pytest.mark.skipif(not SCENARIOS, reason="examples/scenarios/ holds no scenario files yet")
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_selects_the_expected_transition_on_both_backends(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    flow = Flow.model_validate(json.loads((ROOT / "examples" / "flows" / document["flow"]).read_text()))
    rulesets = compile_flow(flow, REGISTRY)
    evaluators = {name: {s: get_backend(name).load(r) for s, r in rulesets.items()} for name in BACKENDS}
    failures = []
    for case in document["cases"]:
        state = case["state"]
        given = scenario_inputs(flow, case)
        facts = rulesets[state].facts(case["phase"], **given)
        indexes = [evaluators[name][state].select(facts) for name in BACKENDS]
        indexes.append(reference(flow, case["phase"], state_name=state, **given))
        targets = [None if i is None else flow.states[state].transitions[i].target_state for i in indexes]
        if targets != [case["expect"]] * 3:
            failures.append(
                f"{case['name']}: python/durable/reference chose {targets}, expected {case['expect']}"
            )
    for by_state in evaluators.values():
        for evaluator in by_state.values():
            evaluator.close()
    assert not failures, "\n".join(failures)


# -- generated states and facts ---------------------------------------------------------------------

PATHS = [
    "slots.a",
    "slots.b",
    "slots['a']",
    "slots.l[0]",
    "variables.n",
    "variables.s",
    "user_profile.tier",
    "intent.name",
    "intent.confidence",
    "event.type",
]
KEYS = ["a", "b", "l", "n", "s", "tier"]
NUMBERS = [
    0,
    1,
    2,
    -1,
    3,
    2**53,
    2**53 + 1,
    2**63 - 2,
    2**63 - 1,
    2**63,
    10**20,
    -(2**63),
    9007199254740992.0,
]
FLOATS = [0.5, 1e-05, 2.0, -0.0, 3.0, 0.7, 1e17, 1.5]
STRINGS = ["a", "b", "é", 'a"', "\\", "large", "", "1", "A", "a\n", "日本"]

literal_values = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(FLOATS), st.sampled_from(STRINGS)
)
values = st.one_of(
    literal_values,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.text(max_size=3),
    st.lists(literal_values, max_size=2),
)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


paths = st.sampled_from(PATHS)
literals = literal_values.map(_literal)
ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
atoms = st.one_of(
    st.tuples(paths, ops, literals).map(" ".join),
    st.tuples(literals, ops, paths).map(" ".join),
    st.tuples(paths, literals, literals).map(lambda t: f"{t[0]} in [{t[1]}, {t[2]}]"),
    paths.map(lambda p: f"{p} matches '^a'"),
    paths.map(lambda p: f"len({p}) > 1"),
    paths.map(lambda p: f"{p} + 1 > 2"),
    paths.map(lambda p: f"lower({p}) == 'a'"),
    st.tuples(paths, ops, paths).map(" ".join),
    paths,
    st.sampled_from(["true", "false", "1 < 2"]),
)
expressions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) and ({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) or ({t[1]})"),
        inner.map(lambda e: f"not ({e})"),
    ),
    max_leaves=3,
)
builtin = st.one_of(
    st.sampled_from(
        [("any_input", None), ("low_confidence", None), ("timeout", None), ("integration_success", None)]
    ),
    st.tuples(st.just("intent_match"), st.sampled_from(["order", "help", "cancel"])),
    st.tuples(st.just("slot_filled"), st.sampled_from([None, "a", "b"])),
    st.tuples(st.just("integration_error"), st.sampled_from([None, "timeout", "http_4xx"])),
)
transitions = st.lists(
    st.tuples(st.one_of(builtin, expressions), st.sampled_from([0, 10, 100, 100, 1000])).map(
        lambda t: (
            {"condition": "expression", "expression": t[0], "target_state": "x", "priority": t[1]}
            if isinstance(t[0], str)
            else {"condition": t[0][0], "condition_value": t[0][1], "target_state": "x", "priority": t[1]}
        )
    ),
    min_size=1,
    max_size=12,
)
states = st.sampled_from(
    [
        ("condition", {}),
        ("slot_filling", {"required_slots": ["a", "b"], "prompts": {"a": "?", "b": "?"}}),
        ("intent", {"confidence_threshold": 0.6}),
    ]
)
confidences = st.one_of(st.floats(0, 1), st.sampled_from([0.6, 0.7, 0.69999, 1e-05, 0, 1, True]))
evaluations = st.fixed_dictionaries(
    {
        "phase": st.sampled_from(["input", "entry"]),
        "event": st.sampled_from(
            [None, {"type": "message", "text": "hi"}, {"type": "timeout"}, {"type": "x"}]
        ),
        "intent": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"name": st.sampled_from(["order", "help", "cancel", "other"]), "confidence": confidences}
            ),
        ),
        "integration": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "outcome": st.sampled_from(["success", "error", "other"]),
                    "error": st.sampled_from([None, "timeout", "http_4xx"]),
                }
            ),
        ),
        "slots": st.dictionaries(st.sampled_from(KEYS), values, max_size=4),
        "variables": st.dictionaries(st.sampled_from(KEYS), values, max_size=4),
        "user_profile": st.dictionaries(st.sampled_from(KEYS), values, max_size=2),
    }
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transitions=transitions, state=states, events=st.lists(evaluations, min_size=1, max_size=5))
def test_generated_conditions_select_the_same_transition_everywhere(
    transitions: list[dict[str, Any]], state: tuple[str, dict[str, Any]], events: list[dict[str, Any]]
) -> None:
    flow = flow_of(transitions, *state)
    ruleset = compile_state(flow, "s", REGISTRY)
    evaluators = [get_backend(name).load(ruleset) for name in BACKENDS]
    try:
        for event in events:
            given = {
                "event": event["event"],
                "intent": event["intent"],
                "integration": event["integration"],
                "namespace": {
                    "slots": event["slots"],
                    "variables": event["variables"],
                    "user_profile": event["user_profile"],
                    "intent": event["intent"] or {},
                    "event": event["event"] or {},
                },
            }
            facts = ruleset.facts(event["phase"], **given)
            expected = reference(flow, event["phase"], **given)
            assert [e.select(facts) for e in evaluators] == [expected, expected], (facts, ruleset.durable())
    finally:
        for evaluator in evaluators:
            evaluator.close()

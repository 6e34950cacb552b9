"""The ruleset compiler and its two backends: the IR's shape, guards, typing, chunks and the intent index."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from mcp_engine import RuleContext
from mcp_engine.contract import ConditionType
from mcp_engine.expressions.evaluate import evaluate, truthy
from mcp_engine.expressions.parser import parse
from mcp_engine.flow.models import Flow
from mcp_engine.registry import Registry, default_registry
from mcp_engine.rulesets import Backend, RulesetError, StateRuleset, compile_state, get_backend
from mcp_engine.rulesets.durable import BRANCHES, CHUNK, DurableEvaluator, branches, refusals
from mcp_engine.rulesets.python import PythonEvaluator
from mcp_engine.rulesets.ruleset import Rule
from mcp_engine.rulesets.vocab import COMPARE_OPS, TRUE

REGISTRY = default_registry()
BACKENDS = ("python", "durable")


def flow_of(
    transitions: list[dict[str, Any]],
    state_type: str = "condition",
    config: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> Flow:
    """A flow whose state ``s`` has ``transitions`` (targets need not exist: rules do not look)."""
    state = {"type": state_type, "config": config or {}, "transitions": transitions}
    return Flow.model_validate(
        {
            "flow_id": "t",
            "tenant_id": "t",
            "name": "t",
            "version": "1.0.0",
            "initial_state": "s",
            "settings": settings or {},
            "states": {"s": state},
        }
    )


def expression(text: str, priority: int = 100) -> dict[str, Any]:
    return {"condition": "expression", "expression": text, "target_state": "x", "priority": priority}


def select(backend: Backend, ruleset: StateRuleset, phase: str = "input", **kwargs: Any) -> int | None:
    evaluator = backend.load(ruleset)
    try:
        return evaluator.select(ruleset.facts(phase, **kwargs))  # type: ignore[arg-type]
    finally:
        evaluator.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return get_backend(request.param)


# -- the IR ---------------------------------------------------------------------------------------


def test_rules_are_in_priority_order_with_ties_in_document_order() -> None:
    flow = flow_of([expression("true", p) for p in (100, 10, 100, 0, 10)])
    ruleset = compile_state(flow, "s", REGISTRY)
    assert [(r.name, r.pri, r.index) for r in ruleset.rules] == [
        ("t3", 0, 3),
        ("t1", 1, 1),
        ("t4", 2, 4),
        ("t0", 3, 0),
        ("t2", 4, 2),
    ]
    assert ruleset.durable()["t3"] == {"pri": 0, "all": [{"m": {"$and": [TRUE]}}]}


def test_the_ir_is_durable_rules_vocabulary() -> None:
    flow = flow_of(
        [
            {"condition": "intent_match", "condition_value": "order", "target_state": "x"},
            expression("slots.size != 'large' and variables.n >= 2"),
        ],
        state_type="intent",
        config={"confidence_threshold": 0.8},
    )
    rules = compile_state(flow, "s", REGISTRY).durable()
    assert rules["t0"]["all"][0]["m"] == {
        "$and": [
            {"$ex": {"phase": 1}},
            {"phase": "input"},
            {"$ex": {"intent": 1}},
            {"intent": "order"},
            {"$ex": {"confidence": 1}},
            {"$gte": {"confidence": 0.8}},
        ]
    }
    assert rules["t1"]["all"][0]["m"] == {
        "$and": [
            {"$ex": {"phase": 1}},
            {
                "$or": [
                    {"$nex": {"slots.size:str": 1}},
                    {"$and": [{"$ex": {"slots.size:str": 1}}, {"$neq": {"slots.size:str": "large"}}]},
                ]
            },
            {"$ex": {"variables.n:num": 1}},
            {"$gte": {"variables.n:num": 2}},
        ]
    }


def _compared(condition: Mapping[str, Any]) -> str | None:
    ((op, argument),) = condition.items()
    if op in COMPARE_OPS:
        return str(next(iter(argument)))
    return None if op.startswith("$") else op


def _unguarded(condition: Mapping[str, Any], guarded: frozenset[str] = frozenset()) -> Iterator[str]:
    """Fields compared without a ``$ex`` guard earlier in an enclosing ``$and``."""
    ((op, argument),) = condition.items()
    if op in ("$and", "$or"):
        seen = set(guarded)
        for item in argument:
            yield from _unguarded(item, frozenset(seen))
            if op == "$and" and "$ex" in item:
                seen.add(next(iter(item["$ex"])))
    elif (key := _compared(condition)) is not None and key not in guarded:
        yield key


def test_every_rule_starts_with_the_phase_guard_and_guards_every_comparison() -> None:
    transitions = [
        {"condition": name, "condition_value": value, "target_state": "x"}
        for name, value in [
            ("any_input", None),
            ("intent_match", "a"),
            ("low_confidence", None),
            ("timeout", None),
            ("slot_filled", "a"),
            ("slot_filled", None),
            ("integration_success", None),
            ("integration_error", "timeout"),
            ("integration_error", None),
        ]
    ] + [
        expression("not (slots.a == 1 or slots.b < 2) and (slots.c != null or not slots.d >= 'x')"),
        expression("slots.a in [1, 2] or len(slots.b) > 2 or slots.c matches 'x' or slots.d == slots.e"),
    ]
    flow = flow_of(
        transitions, "slot_filling", {"required_slots": ["a", "b"], "prompts": {"a": "?", "b": "?"}}
    )
    ruleset = compile_state(flow, "s", REGISTRY)
    assert len(ruleset.rules) == len(transitions)
    for rule in ruleset.rules:
        assert rule.condition["$and"][0] == {"$ex": {"phase": 1}}
        assert list(_unguarded(rule.condition)) == [], rule
        assert ({"phase": "input"} in rule.condition["$and"]) == (rule.kind == "input")


def test_a_condition_that_never_holds_has_no_rule(backend: Backend) -> None:
    flow = flow_of(
        [expression("false"), expression("slots.a < null"), {"condition": "slot_filled", "target_state": "x"}]
    )
    ruleset = compile_state(flow, "s", REGISTRY)
    assert ruleset.rules == ()
    assert select(backend, ruleset, namespace={"slots": {"a": 1}}) is None


def test_slot_filled_without_value_means_every_required_slot(backend: Backend) -> None:
    config = {
        "required_slots": ["size", "count"],
        "optional_slots": ["crust"],
        "prompts": {"size": "?", "count": "?"},
    }
    flow = flow_of([{"condition": "slot_filled", "target_state": "x"}], "slot_filling", config)
    ruleset = compile_state(flow, "s", REGISTRY)
    assert select(backend, ruleset, "entry", namespace={"slots": {"size": "large"}}) is None
    assert select(backend, ruleset, "entry", namespace={"slots": {"size": "large", "count": None}}) is None
    assert select(backend, ruleset, "entry", namespace={"slots": {"size": "large", "count": 0}}) == 0


# -- phases and engine facts ----------------------------------------------------------------------


def test_entry_phase_fires_only_automatic_rules(backend: Backend) -> None:
    flow = flow_of([{"condition": "any_input", "target_state": "x", "priority": 0}, expression("true")])
    ruleset = compile_state(flow, "s", REGISTRY)
    message = {"type": "message", "text": "hi"}
    assert select(backend, ruleset, "input", event=message) == 0
    assert select(backend, ruleset, "input", event={"type": "timeout"}) == 1
    assert select(backend, ruleset, "entry", event=message) == 1


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ({"name": "order", "confidence": 0.8}, 0),
        ({"name": "order", "confidence": 0.79}, 1),
        ({"name": "other", "confidence": 0.95}, None),
        ({"name": "other", "confidence": 1e-05}, 1),
        ({"name": "order"}, None),
        ({"name": "order", "confidence": True}, None),
        (None, None),
    ],
)
def test_intent_and_low_confidence_use_the_state_threshold(
    backend: Backend, intent: dict[str, Any] | None, expected: int | None
) -> None:
    transitions = [
        {"condition": "intent_match", "condition_value": "order", "target_state": "x"},
        {"condition": "low_confidence", "target_state": "x"},
    ]
    ruleset = compile_state(flow_of(transitions, "intent", {"confidence_threshold": 0.8}), "s", REGISTRY)
    assert select(backend, ruleset, intent=intent, event={"type": "message"}) == expected
    default = compile_state(
        flow_of(transitions, "intent", settings={"confidence_threshold": 0.5}), "s", REGISTRY
    )
    assert select(backend, default, intent={"name": "order", "confidence": 0.6}) == 0


@pytest.mark.parametrize(
    ("integration", "expected"),
    [
        ({"outcome": "success"}, 0),
        ({"outcome": "error", "error": "timeout"}, 1),
        ({"outcome": "error", "error": "http_4xx"}, 2),
        ({"outcome": "error"}, 2),
        (None, None),
    ],
)
def test_integration_and_timeout_conditions(
    backend: Backend, integration: dict[str, Any] | None, expected: int | None
) -> None:
    transitions = [
        {"condition": "integration_success", "target_state": "x"},
        {"condition": "integration_error", "condition_value": "timeout", "target_state": "x"},
        {"condition": "integration_error", "target_state": "x"},
        {"condition": "timeout", "target_state": "x"},
    ]
    ruleset = compile_state(flow_of(transitions), "s", REGISTRY)
    assert select(backend, ruleset, "entry", integration=integration) == expected
    assert select(backend, ruleset, "input", event={"type": "timeout"}, integration=integration) == (
        3 if expected is None else expected
    )


def test_facts_format() -> None:
    flow = flow_of(
        [
            expression("slots.size == 'large' and slots['a b'] > 2 and slots.items[0] == true"),
            expression("slots.size in ['large']"),
            {"condition": "any_input", "target_state": "x"},
        ]
    )
    ruleset = compile_state(flow, "s", REGISTRY)
    namespace = {"slots": {"size": "large", "a b": 2.0, "items": [True]}}
    facts = ruleset.facts(
        "input",
        {"type": "message", "text": "hi"},
        {"name": "order", "confidence": 1},
        {"outcome": "error", "error": "timeout"},
        namespace,
    )
    assert facts == {
        "phase": "input",
        "event_type": "message",
        "input": True,
        "intent": "order",
        "confidence": 1.0,
        "integration": "error",
        "integration_error": "timeout",
        "slots.size:str": "large",
        "_f.1:num": 2,
        "slots.items[0]:bool": True,
        "_c.0": True,
    }
    assert type(facts["confidence"]) is float
    assert type(facts["_f.1:num"]) is int
    with pytest.raises(ValueError, match="phase"):
        ruleset.facts("exit")  # type: ignore[arg-type]


# -- strict typing, on both backends and against the expression evaluator ---------------------------

INF = math.inf
STRICT_CASES: list[tuple[str, Any]] = (
    [
        ("slots.n < 5", v)
        for v in ("3", True, 3, 3.0, None, 4.999, -(10**30), INF, -INF, math.nan, [1], {"a": 1})
    ]
    + [("slots.n == 1", v) for v in (True, 1, 1.0, "1", None)]
    + [("slots.n == true", v) for v in (True, 1, "true", False)]
    + [("slots.n != 1", v) for v in (None, "1", 1, 1.0, 2, True, math.nan)]
    + [("slots.n == null", v) for v in (None, 0, "", False)]
    + [("slots.n != null", v) for v in (None, 0, math.nan)]
    + [("not (slots.n < 5)", v) for v in ("x", 7, 3, math.nan, None, INF)]
    + [("5 > slots.n", v) for v in (3, 5, "3")]
    + [("slots.n > 100000000000000000000", v) for v in (10**21, 10**19, INF)]
    + [("slots.n > 5", v) for v in (10**30, 2**63, 2**63 - 1, 1e300, -1e300)]
    + [("slots.n < 0.001", v) for v in (1e-05, 1e-300, 0.0011, -1e-07)]
    + [("slots.n == 9007199254740993", v) for v in (9007199254740992.0, 9007199254740993, 2**53)]
    + [("slots.n == 9223372036854775806", v) for v in (2**63 - 2, 2**63 - 1, 2**63, 9.223372036854776e18)]
    + [("slots.n < 'b'", v) for v in ("a", 'a"', "a\n", "é", "\\", "b", 1)]
    + [("slots.n == 'é\"\\\\日\\n'", v) for v in ('é"\\日\n', "é", "\\u00e9")]
    + [("slots.n in [1, 2] or lower(slots.n) == 'a'", v) for v in (1, 2.0, True, "A", None)]
    + [("slots.n <= -2.5 or slots.n >= 1e17", v) for v in (-2.5, -3, 0, 1e17, 10**17, 10**17 - 1)]
)


@pytest.mark.parametrize(("text", "value"), STRICT_CASES)
def test_comparisons_are_strictly_typed_on_both_backends(text: str, value: Any) -> None:
    ruleset = compile_state(flow_of([expression(text)]), "s", REGISTRY)
    namespace = {"slots": {"n": value}}
    expected = 0 if truthy(evaluate(parse(text), namespace)) else None
    assert [select(get_backend(name), ruleset, namespace=namespace) for name in BACKENDS] == [expected] * 2
    assert select(get_backend("python"), ruleset, namespace={"slots": {}}) == (
        0 if truthy(evaluate(parse(text), {"slots": {}})) else None
    )


@pytest.mark.parametrize(
    ("comparison", "value", "strict"),
    [
        ({"$lt": {"x": 5}}, "3", None),  # durable orders a string against a number
        ({"$lt": {"x": 5}}, True, None),  # and a boolean
        ({"$lt": {"x": "a#"}}, 'a"', 0),  # and strings by their escaped JSON text: 'a\\"' > 'a#'
    ],
)
def test_durable_alone_is_not_strict(comparison: dict[str, Any], value: Any, strict: int | None) -> None:
    """Why typed fields, and why string ordering is evaluated in Python: raw durable_rules errs here."""
    raw = StateRuleset(
        "s", (Rule("t0", 0, 0, "automatic", {"$and": [TRUE, {"$ex": {"x": 1}}, comparison]}),), (), ()
    )
    evaluators = [get_backend(name).load(raw) for name in BACKENDS]
    assert [e.select({"phase": "input", "x": value}) for e in evaluators] == [
        strict,
        0 if strict is None else None,
    ]
    for evaluator in evaluators:
        evaluator.close()


def test_missing_compared_fields_are_safe(backend: Backend) -> None:
    flow = flow_of([expression("slots.a == 'x' or slots.b > 2 or slots.c != true"), expression("true")])
    ruleset = compile_state(flow, "s", REGISTRY)
    assert select(backend, ruleset) == 0  # slots.c != true holds when slots.c is missing
    assert select(backend, ruleset, namespace={"slots": {"c": True}}) == 1


# -- chunks, the intent index, closing -------------------------------------------------------------


def test_durable_splits_large_states_into_chunks_tried_in_pri_order() -> None:
    count = 600
    # Rule i holds when n >= i % 300; priorities fall with i, so later transitions come first, with ties.
    transitions = [expression(f"variables.n >= {i % 300}", priority=1000 - i // 3) for i in range(count)]
    ruleset = compile_state(flow_of(transitions), "s", REGISTRY)
    durable = get_backend("durable").load(ruleset)
    python = get_backend("python").load(ruleset)
    assert isinstance(durable, DurableEvaluator)
    assert len(durable._chunks) == math.ceil(count / CHUNK)
    order = sorted(range(count), key=lambda i: (transitions[i]["priority"], i))
    for n in (-1, 0, 5, 63, 64, 150, 299, 400):
        facts = ruleset.facts("entry", namespace={"variables": {"n": n}})
        expected = next((i for i in order if n >= i % 300), None)
        assert durable.select(facts) == python.select(facts) == expected
    durable.close()
    durable.close()  # closing twice is harmless
    assert durable.select(ruleset.facts("entry")) is None


def test_a_durable_chunk_with_too_many_matches_is_split() -> None:
    # 64 rules (one chunk) whose two alternatives both hold: durable_rules fails with error 303 on such
    # an event; the chunk is split in two and answers as it would have.
    transitions = [expression(f"variables.n >= {-i} or variables.m >= {-i}", 1000 - i) for i in range(CHUNK)]
    ruleset = compile_state(flow_of(transitions), "s", REGISTRY)
    durable = get_backend("durable").load(ruleset)
    assert isinstance(durable, DurableEvaluator)
    facts = ruleset.facts("entry", namespace={"variables": {"n": 0, "m": 0}})
    assert durable.select(facts) == CHUNK - 1
    assert durable._chunks[0].halves is not None
    assert durable.select(ruleset.facts("entry", namespace={"variables": {"n": -63}})) == CHUNK - 1
    assert durable.select(ruleset.facts("entry", namespace={"variables": {"n": -64}})) is None
    durable.close()


def test_a_chunk_holds_at_most_what_durable_can_load_without_hanging() -> None:
    """64 rules of nine alternatives each expand to 576 branches: in one durable ruleset create_ruleset
    never returns. Loaded in a child process, bounded in time, so a regression fails instead of hanging."""
    program = (
        "from mcp_engine.rulesets import compile_state, get_backend\n"
        "from tests.test_rulesets import REGISTRY, expression, flow_of\n"
        "wide = ' or '.join(f'variables.k == {j}' for j in range(9))\n"
        "ruleset = compile_state(flow_of([expression(wide, 100 + i) for i in range(64)]), 's', REGISTRY)\n"
        "durable = get_backend('durable').load(ruleset)\n"
        "assert len(durable._chunks) == 2, len(durable._chunks)\n"
        "assert durable.select(ruleset.facts('entry', namespace={'variables': {'k': 3}})) == 0\n"
        "print('loaded')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "loaded", done.stderr
    wide = compile_state(
        flow_of([expression(" or ".join(f"variables.k == {j}" for j in range(9)))]), "s", REGISTRY
    )
    assert branches(wide.rules[0].condition) == 9
    assert BRANCHES < CHUNK * 9


def test_refusals_name_the_transitions_durable_cannot_hold() -> None:
    fine = expression("variables.k == 1 or variables.k == 2", priority=1)
    refused = expression(" or ".join(f"variables.k == {j}" for j in range(20)), priority=2)
    too_wide = expression(" or ".join(f"slots.k{j} != null" for j in range(70)), priority=3)
    ruleset = compile_state(flow_of([fine, refused, too_wide]), "s", REGISTRY)
    found = dict(refusals(ruleset))
    assert sorted(found) == [1, 2]
    assert "error code: 113" in found[1]
    assert "70 alternatives" in found[2]


def test_rules_beyond_durables_limits_are_clear_errors_there_and_fine_in_python() -> None:
    wide = compile_state(
        flow_of([expression(" or ".join(f"slots.k{i} == 1" for i in range(20)))]), "s", REGISTRY
    )
    with pytest.raises(RulesetError, match="durable_rules cannot hold rules t0"):
        get_backend("durable").load(wide)
    assert select(get_backend("python"), wide, namespace={"slots": {"k19": 1}}) == 0
    many = compile_state(
        flow_of([expression(" or ".join(f"slots.k{i} != null" for i in range(70)))]), "s", REGISTRY
    )
    everything = {"slots": {f"k{i}": 1 for i in range(70)}}
    durable = get_backend("durable").load(many)
    with pytest.raises(RulesetError, match="cannot evaluate rule t0, too many of its alternatives hold"):
        durable.select(many.facts("entry", namespace=everything))
    assert durable.select(many.facts("entry", namespace={"slots": {"k3": 1}})) == 0  # still usable
    durable.close()


def test_python_backend_indexes_many_intents_and_keeps_pri_order(backend: Backend) -> None:
    intents = [f"intent_{i}" for i in range(50)]
    transitions = [
        {"condition": "intent_match", "condition_value": name, "target_state": "x", "priority": 10 + i % 3}
        for i, name in enumerate(intents)
    ]
    transitions.insert(20, expression("variables.vip == true", priority=11))
    transitions.append({"condition": "intent_match", "condition_value": "intent_7", "target_state": "x"})
    transitions.append({"condition": "low_confidence", "target_state": "x", "priority": 50})
    flow = flow_of(transitions, "intent")
    ruleset = compile_state(flow, "s", REGISTRY)
    python = get_backend("python").load(ruleset)
    assert isinstance(python, PythonEvaluator)
    assert python._input.by_intent is not None
    assert len(python._input.by_intent["intent_7"]) == 4
    for name in [*intents, "unknown"]:
        for vip in (True, False):
            for confidence in (0.9, 0.2):
                given: dict[str, Any] = {
                    "intent": {"name": name, "confidence": confidence},
                    "namespace": {"variables": {"vip": vip}},
                }
                assert select(backend, ruleset, **given) == reference(flow, "input", **given), given


def test_unknown_condition_is_a_clear_error() -> None:
    flow = flow_of([{"condition": "telepathy", "target_state": "x"}])
    with pytest.raises(RulesetError, match=r"unknown condition 'telepathy' \(known: any_input"):
        compile_state(flow, "s", REGISTRY)


def test_an_expression_that_does_not_parse_is_a_clear_error() -> None:
    with pytest.raises(RulesetError, match=r"state 's': expression 'slots.a ==' does not parse"):
        compile_state(flow_of([expression("slots.a ==")]), "s", REGISTRY)


class Weekend(ConditionType):
    """A plugin condition evaluated in Python."""

    name = "weekend"
    value = "optional"

    @classmethod
    def holds(cls, value: str | None, namespace: Mapping[str, Any]) -> bool:
        return namespace.get("context", {}).get("day") in ("sat", "sun")


class Vip(ConditionType):
    """A plugin condition written in the vocabulary over a typed field."""

    name = "vip"

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        return {"$or": [{ctx.field(("user_profile", "tier"), "str"): "gold"}, {"$gte": {"_x": 3}}]}


class Broken(ConditionType):
    name = "broken"


class Unsayable(ConditionType):
    name = "unsayable"

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        return {"$lt": {ctx.field(("slots", "a"), "bool"): True}}


def plugin_registry() -> Registry:
    registry = default_registry()
    for cls in (Weekend, Vip, Broken, Unsayable):
        registry.conditions.add(cls, "test")
    return registry


def test_plugin_conditions_take_part_through_rule_or_holds(backend: Backend) -> None:
    flow = flow_of([{"condition": "weekend", "target_state": "x"}, {"condition": "vip", "target_state": "x"}])
    ruleset = compile_state(flow, "s", plugin_registry())
    assert [p.source for p in ruleset.predicates] == ["weekend"]
    assert select(backend, ruleset, namespace={"context": {"day": "sun"}}) == 0
    assert select(backend, ruleset, namespace={"user_profile": {"tier": "gold"}}) == 1
    assert (
        select(backend, ruleset, namespace={"user_profile": {"tier": 1}, "context": {"day": "mon"}}) is None
    )


@pytest.mark.parametrize(
    ("condition", "message"),
    [("broken", "implements neither rule"), ("unsayable", "compares a boolean")],
)
def test_plugin_conditions_that_cannot_compile_say_why(condition: str, message: str) -> None:
    with pytest.raises(RulesetError, match=message):
        compile_state(flow_of([{"condition": condition, "target_state": "x"}]), "s", plugin_registry())


def test_get_backend_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_RULES_BACKEND", raising=False)
    assert get_backend().name == "python"
    monkeypatch.setenv("MCP_RULES_BACKEND", "durable")
    assert get_backend().name == "durable"
    assert get_backend("python").name == "python"
    with pytest.raises(ValueError, match="MCP_RULES_BACKEND"):
        get_backend("drools")


# -- the brute-force reference (also used by the differential test) -------------------------------

INPUT_CONDITIONS = frozenset({"any_input", "intent_match", "low_confidence", "timeout"})


def reference(
    flow: Flow,
    phase: str,
    event: Mapping[str, Any] | None = None,
    intent: Mapping[str, Any] | None = None,
    integration: Mapping[str, Any] | None = None,
    namespace: Mapping[str, Any] | None = None,
    state_name: str = "s",
) -> int | None:
    """Each built-in condition evaluated directly from SPEC §4, first in (priority, order): no compiler."""
    state = flow.states[state_name]
    namespace = namespace or {}
    own = state.config.get("confidence_threshold")
    threshold: float = own if own is not None else flow.settings.confidence_threshold
    confidence: Any = (intent or {}).get("confidence")
    classified = type(confidence) in (int, float) and math.isfinite(confidence)
    event_type = (event or {}).get("type")
    outcome, error = (integration or {}).get("outcome"), (integration or {}).get("error")
    slots = namespace.get("slots")
    required = state.config.get("required_slots", []) if state.type == "slot_filling" else []

    def holds(condition: str, value: str | None, text: str | None) -> bool:
        if condition == "any_input":
            return event_type == "message"
        if condition == "intent_match":
            return (intent or {}).get("name") == value and classified and confidence >= threshold
        if condition == "low_confidence":
            return classified and confidence < threshold
        if condition == "timeout":
            return event_type == "timeout"
        if condition == "slot_filled":
            wanted = [value] if value else required
            return (
                bool(wanted) and isinstance(slots, Mapping) and all(slots.get(s) is not None for s in wanted)
            )
        if condition == "integration_success":
            return outcome == "success"
        if condition == "integration_error":
            return outcome == "error" and (value is None or error == value)
        return text is not None and truthy(evaluate(parse(text), namespace))

    order = sorted(range(len(state.transitions)), key=lambda i: (state.transitions[i].priority, i))
    for i in order:
        t = state.transitions[i]
        if (phase == "input" or t.condition not in INPUT_CONDITIONS) and holds(
            t.condition, t.condition_value, t.expression
        ):
            return i
    return None

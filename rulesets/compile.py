"""Flow transitions -> one ruleset per state, compiled once when the flow is compiled (never per turn).

A transition becomes a rule named ``t<index>`` whose ``pri`` is its place in (priority, document order),
so the lowest ``pri`` that holds is the transition taken. Its condition is the condition type's
vocabulary (``ConditionType.rule``) or a Python-evaluated fact (``ConditionType.holds``), normalised
(``vocab.normalize``) and prefixed with ``{"$ex": {"phase": 1}}``: without it durable_rules' ``$nex``
also matches the session's own state fact. Input rules also require ``{"phase": "input"}``, so right
after a state is entered (phase ``entry``) only automatic rules can fire.
"""

from __future__ import annotations

from mcp_engine.contract import ConditionType, StateType
from mcp_engine.flow.gc_pause import paused_gc
from mcp_engine.flow.models import Flow, State, Transition
from mcp_engine.registry import Registry
from mcp_engine.rulesets.context import FactPlan, TransitionContext
from mcp_engine.rulesets.ruleset import Rule, StateRuleset
from mcp_engine.rulesets.vocab import FALSE, PHASE, TRUE, Condition, RulesetError, conjuncts, normalize

INPUT_PHASE: Condition = {PHASE: "input"}


def compile_flow(flow: Flow, registry: Registry) -> dict[str, StateRuleset]:
    """Every state's ruleset, keyed by state name."""
    with paused_gc():
        return {name: compile_state(flow, name, registry) for name in flow.states}


def compile_state(
    flow: Flow, state_name: str, registry: Registry, plugin: StateType | None = None
) -> StateRuleset:
    """The ruleset of one state; a transition whose condition can never hold gets no rule.

    ``plugin`` is the state's ``StateType`` instance (made here from its configuration when not given):
    conditions read compile-time constants of the state through it, such as its threshold.
    """
    state = flow.states[state_name]
    plugin = plugin or _state_type(registry, state_name, state)
    plan = FactPlan()
    order = sorted(range(len(state.transitions)), key=lambda i: (state.transitions[i].priority, i))
    rules: list[Rule] = []
    for pri, index in enumerate(order):
        transition = state.transitions[index]
        condition_type = _condition_type(registry, state_name, index, transition)
        ctx = TransitionContext(flow, state_name, state, transition, condition_type.kind, plan, plugin)
        condition = _condition(condition_type, transition, ctx)
        if condition == FALSE:
            continue
        terms = [TRUE, *([INPUT_PHASE] if condition_type.kind == "input" else []), *conjuncts(condition)]
        rules.append(Rule(f"t{index}", pri, index, condition_type.kind, {"$and": terms}))
    return StateRuleset(state_name, tuple(rules), tuple(plan.fields.values()), tuple(plan.predicates))


def _state_type(registry: Registry, name: str, state: State) -> StateType:
    cls = registry.state_types.get(state.type)
    if cls is None:
        raise RulesetError(f"state '{name}': unknown state type '{state.type}'", {"state": name})
    return cls(name, cls.Config.model_validate(state.config))


def _condition_type(
    registry: Registry, state: str, index: int, transition: Transition
) -> type[ConditionType]:
    condition_type = registry.conditions.get(transition.condition)
    if condition_type is None:
        raise RulesetError(
            f"state '{state}', transition {index}: unknown condition '{transition.condition}' "
            f"(known: {', '.join(registry.conditions.names())})",
            {"state": state, "transition": index, "condition": transition.condition},
        )
    return condition_type


def _condition(
    condition_type: type[ConditionType], transition: Transition, ctx: TransitionContext
) -> Condition:
    value = transition.condition_value
    try:
        vocabulary = condition_type.rule(value, ctx)
    except ValueError as exc:
        raise RulesetError(f"state '{ctx.state_name}': condition '{condition_type.name}': {exc}") from exc
    if vocabulary is None:
        if not any("holds" in vars(cls) for cls in condition_type.__mro__ if cls is not ConditionType):
            raise RulesetError(f"condition '{condition_type.name}' implements neither rule() nor holds()")
        return ctx.predicate(lambda namespace: condition_type.holds(value, namespace), condition_type.name)
    try:
        return normalize(vocabulary)
    except RulesetError as exc:
        raise RulesetError(
            f"state '{ctx.state_name}': condition '{condition_type.name}' gave an invalid rule: {exc}"
        ) from exc

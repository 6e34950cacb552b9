"""Graph checks over a flow: reachability, dead ends, automatic loops, priority conflicts, no end.

These need the whole flow at once (not one state), so they run after the reference checks,
on the states whose configuration validated.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mcp_engine.expressions.nodes import Compare, Const, Node, path_of
from mcp_engine.flow.models import Flow, Transition
from mcp_engine.flow.problems import Problem, pointer
from mcp_engine.registry import Registry

Path = tuple[str | int, ...]
CONFLICT_WINDOW = 32  # earlier transitions of the same priority each one is compared with


@dataclass
class FlowGraph:
    """What the checks need: per state its successors, and which states wait for input.

    ``named_states`` holds, per state, every state its part of the document names (its transitions'
    targets, and what its actions and configuration refer to, such as a sub-flow's return state), as the
    reference checker found them through the plugins' ``references()``.
    """

    flow: Flow
    registry: Registry
    expressions: dict[Path, Node]
    named_states: dict[str, list[str]]

    def kind(self, transition: Transition) -> str:
        condition = self.registry.conditions.get(transition.condition)
        return condition.kind if condition else "automatic"

    def waits(self, name: str) -> bool:
        """SPEC §4: a state waits when it consumes input or has input transitions."""
        state = self.flow.states[name]
        state_type = self.registry.state_types.get(state.type)
        if state_type is not None and (state_type.consumes_input or state_type.ends_run):
            return True
        return any(self.kind(t) == "input" for t in state.transitions)

    def successors(self, name: str) -> Iterator[str]:
        yield from self.named_states.get(name, ())

    def always_true(self, name: str, index: int) -> bool:
        """The transition's condition is its expression, and that is a true constant."""
        condition = self.registry.conditions.get(self.flow.states[name].transitions[index].condition)
        node = self.expressions.get(("states", name, "transitions", index, "expression"))
        reads = condition is not None and condition.reads_expression
        return reads and isinstance(node, Const) and bool(node.value)


def analyse(graph: FlowGraph) -> list[Problem]:
    problems: list[Problem] = []
    problems.extend(_unreachable(graph))
    problems.extend(_dead_ends(graph))
    problems.extend(_automatic_loops(graph))
    problems.extend(_priority_conflicts(graph))
    if not any(
        (st := graph.registry.state_types.get(s.type)) is not None and st.ends_run
        for s in graph.flow.states.values()
    ):
        problems.append(
            Problem("warning", "/states", "the flow has no end state: its runs never complete", "no-end")
        )
    return problems


def _unreachable(graph: FlowGraph) -> Iterator[Problem]:
    flow = graph.flow
    handlers = flow.global_handlers
    roots = [flow.initial_state, *(h.target_state for h in handlers.intents.values())]
    if handlers.no_match and handlers.no_match.target_state:
        roots.append(handlers.no_match.target_state)
    if handlers.error_state:
        roots.append(handlers.error_state)
    seen: set[str] = set()
    todo = [r for r in roots if r in flow.states]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(s for s in graph.successors(name) if s in flow.states and s not in seen)
    for name in flow.states:
        if name not in seen:
            yield Problem(
                "warning",
                pointer("states", name),
                f"state '{name}' is never entered: nothing leads to it",
                "unreachable",
            )


def _dead_ends(graph: FlowGraph) -> Iterator[Problem]:
    for name, state in graph.flow.states.items():
        if not state.transitions and not graph.waits(name):
            yield Problem(
                "warning",
                pointer("states", name),
                f"state '{name}' neither waits for input nor has a transition: "
                "a conversation reaching it goes to the error handler",
                "dead-end",
            )


def _automatic_loops(graph: FlowGraph) -> Iterator[Problem]:
    """Loops through states that never wait and that nothing can leave: no input can break them."""
    flow = graph.flow
    running = {name for name in flow.states if not graph.waits(name)}
    edges = {name: [s for s in graph.successors(name) if s in flow.states] for name in running}
    for component in _strongly_connected(running, edges):
        members = set(component)
        looping = len(component) > 1 or component[0] in edges[component[0]]
        if not looping:
            continue
        exits = any(s not in members for name in component for s in edges[name])
        forced = all(
            flow.states[name].transitions
            and graph.always_true(name, _first(flow.states[name].transitions))
            and flow.states[name].transitions[_first(flow.states[name].transitions)].target_state in members
            for name in component
        )
        if not exits or forced:
            cycle = " -> ".join([*sorted(component), sorted(component)[0]])
            yield Problem(
                "error",
                pointer("states", sorted(component)[0]),
                f"automatic loop {cycle}: these states never wait for input "
                "and always lead back into the loop",
                "automatic-loop",
            )


def _first(transitions: list[Transition]) -> int:
    return min(range(len(transitions)), key=lambda i: (transitions[i].priority, i))


def _strongly_connected(nodes: set[str], edges: dict[str, list[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm, iterative so that 5,000-state flows do not hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in nodes:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield component


def _priority_conflicts(graph: FlowGraph) -> Iterator[Problem]:
    """Per transition, the first earlier one of its priority that can hold with it. Near-linear: each is
    compared with at most ``CONFLICT_WINDOW`` earlier transitions of its priority (all of them in any
    ordinary state), and a larger group of one priority is itself a warning."""
    for name, state in graph.flow.states.items():
        groups: dict[int, list[int]] = {}
        for j, transition in enumerate(state.transitions):
            group = groups.setdefault(transition.priority, [])
            i = next((i for i in group[-CONFLICT_WINDOW:] if not _exclusive(graph, name, i, j)), None)
            group.append(j)
            if i is not None:
                yield Problem(
                    "warning",
                    pointer("states", name, "transitions", j, "priority"),
                    f"transitions {i} and {j} both have priority {transition.priority} and can both hold; "
                    f"{i} always wins - give them different priorities",
                    "priority-conflict",
                )
        for priority, group in groups.items():
            if len(group) > CONFLICT_WINDOW:
                yield Problem(
                    "warning",
                    pointer("states", name, "transitions"),
                    f"{len(group)} transitions share priority {priority}: each was checked against the "
                    f"{CONFLICT_WINDOW} before it only - give them different priorities",
                    "priority-conflict",
                )


def _exclusive(graph: FlowGraph, state: str, i: int, j: int) -> bool:
    """True when two transitions provably cannot hold for the same event."""
    a, b = graph.flow.states[state].transitions[i], graph.flow.states[state].transitions[j]
    kind_a, kind_b = graph.registry.conditions.get(a.condition), graph.registry.conditions.get(b.condition)
    if kind_a is None or kind_b is None:
        return False
    if kind_a.excludes(a.condition_value, kind_b, b.condition_value) or kind_b.excludes(
        b.condition_value, kind_a, a.condition_value
    ):
        return True
    if kind_a is kind_b and kind_a.reads_expression:
        na = graph.expressions.get(("states", state, "transitions", i, "expression"))
        nb = graph.expressions.get(("states", state, "transitions", j, "expression"))
        return _equals_other_constants(na, nb)
    return False


def _equals_other_constants(a: Node | None, b: Node | None) -> bool:
    """``x == 1`` and ``x == 2`` exclude each other."""
    if not (isinstance(a, Compare) and isinstance(b, Compare) and a.op == b.op == "=="):
        return False
    if not (isinstance(a.right, Const) and isinstance(b.right, Const)):
        return False
    path_a, path_b = path_of(a.left), path_of(b.left)
    return path_a is not None and path_a == path_b and a.right.value != b.right.value


def analyse_despite_errors(
    graph: FlowGraph, configured: set[str], all_states: dict[str, Any]
) -> Iterator[Problem]:
    """Unreachable states and dead ends of a flow that has errors, as far as they can be told (issue 10).

    ``configured``: the states whose type and configuration validated (only they can be told to wait or
    not); ``all_states``: every state of the document as written, so that a state whose schema is broken
    still leads where its transitions' ``target_state`` say. When ``initial_state`` names no state, the
    state it most likely means (the "did you mean" one) is taken as the start; with no such state, only
    the states nothing leads to at all are reported.
    """
    flow = graph.flow
    edges = {name: [*graph.successors(name)] for name in flow.states}
    for name, raw in all_states.items():
        if name not in edges:
            edges[name] = _raw_targets(raw)
    start = flow.initial_state
    if start not in all_states:
        close = difflib.get_close_matches(start, list(all_states), n=1, cutoff=0.6)
        start = close[0] if close else ""
    handlers = flow.global_handlers
    roots = [h.target_state for h in handlers.intents.values()]
    if handlers.no_match and handlers.no_match.target_state:
        roots.append(handlers.no_match.target_state)
    if handlers.error_state:
        roots.append(handlers.error_state)
    if start:
        seen = _reached([start, *roots], edges)
        assumed = "" if start == flow.initial_state else f" (reading initial_state as '{start}')"
    else:
        seen = set(roots) | {target for targets in edges.values() for target in targets}
        assumed = " (and initial_state names no state)"
    for name in all_states:
        if name not in seen:
            yield Problem(
                "warning",
                pointer("states", name),
                f"state '{name}' is never entered: nothing leads to it{assumed}",
                "unreachable",
            )
    dead_ends = {pointer("states", name) for name in configured}
    yield from (problem for problem in _dead_ends(graph) if problem.pointer in dead_ends)


def _reached(roots: list[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in edges]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(s for s in edges.get(name, ()) if s in edges and s not in seen)
    return seen


def _raw_targets(state: Any) -> list[str]:
    """The ``target_state`` strings of a state as written (its schema may be broken)."""
    transitions = state.get("transitions") if isinstance(state, dict) else None
    if not isinstance(transitions, list):
        return []
    return [
        t["target_state"]
        for t in transitions
        if isinstance(t, dict) and isinstance(t.get("target_state"), str)
    ]

"""The graph exporter draws every state, transition, handler and sub-flow link, in every format.

Mermaid and DOT are parsed back with small regexes and compared, edge for edge, with the flow:
a label that breaks its quoting would not match the patterns, so these tests also check escaping.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from mcp_engine.flow import graph
from mcp_engine.flow.graph import to_dot, to_mermaid, to_svg
from mcp_engine.flow.models import Flow
from mcp_engine.registry import default_registry

FLOWS = sorted((Path(__file__).parent.parent / "examples" / "flows").glob("*.json"))
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")

MERMAID_NODE = re.compile(
    r'^    (\w+)(?:\(\[|\[\[|\[/|\{\{|\(\(|\()"?([^"]*)"?(?:\]\)|\]\]|/\]|\}\}|\)\)|\))$'
)
MERMAID_EDGE = re.compile(r'^    (\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$')
DOT_STRING = r'"((?:[^"\\]|\\.)*)"'
DOT_NODE = re.compile(rf"^    (\w+) \[label={DOT_STRING}[^\]]*\];$")
DOT_EDGE = re.compile(rf'^    (\w+) -> (\w+) \[(?:label={DOT_STRING}(, style=dashed)?, )?id="\w+"\];$')

Edge = tuple[str, str, str, bool]  # source label, target label, edge label, dashed


def mermaid_unescape(text: str) -> str:
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text.replace("<br/>", "\n"))


def dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text, flags=re.DOTALL)


def parse_mermaid(text: str) -> tuple[dict[str, str], list[Edge]]:
    """Node labels by id and edges by label; fails on any line the exporter should not write."""
    nodes: dict[str, str] = {}
    raw_edges: list[Edge] = []
    body = text.split("---\n")[2].splitlines()
    assert body[0] == "flowchart TD"
    for line in body[1:]:
        if edge := MERMAID_EDGE.match(line):
            raw_edges.append((edge[1], edge[4], mermaid_unescape(edge[3] or ""), edge[2] == "-.->"))
        elif node := MERMAID_NODE.match(line):
            nodes[node[1]] = mermaid_unescape(node[2])
        else:
            assert re.match(r"^    class(Def)? \S+ \S+$", line), f"unexpected Mermaid line {line!r}"
    return named(nodes, raw_edges)


def parse_dot(text: str) -> tuple[dict[str, str], list[Edge]]:
    nodes: dict[str, str] = {}
    raw_edges: list[Edge] = []
    lines = text.splitlines()
    assert lines[0].startswith("digraph ")
    assert lines[-1] == "}"
    for line in lines[1:-1]:
        if re.match(r"^    (graph|node|edge) \[.*\];$", line):
            continue  # default attributes
        if edge := DOT_EDGE.match(line):
            raw_edges.append((edge[1], edge[2], dot_unescape(edge[3] or ""), bool(edge[4])))
        else:
            node = DOT_NODE.match(line)
            assert node, f"unexpected DOT line {line!r}"
            nodes[node[1]] = dot_unescape(node[2])
    return named(nodes, raw_edges)


def named(nodes: dict[str, str], raw_edges: list[Edge]) -> tuple[dict[str, str], list[Edge]]:
    """Edges with node labels instead of ids; the start point is called 'start' (DOT draws no label)."""
    nodes[graph.START_ID] = "start"
    return nodes, [(nodes[s], nodes[t], label, dashed) for s, t, label, dashed in raw_edges]


PARSERS = {"mermaid": (to_mermaid, parse_mermaid), "dot": (to_dot, parse_dot)}
REGISTRY = default_registry()


def load(path: Path) -> Flow:
    return Flow.model_validate(json.loads(path.read_text()))


def state_label(flow: Flow, name: str) -> str:
    return f"{name}\n{flow.states[name].type}"


def expected_edges(flow: Flow) -> Counter[Edge]:
    """What the exporter must draw, written independently of its code."""
    edges: Counter[Edge] = Counter()
    edges[("start", state_label(flow, flow.initial_state), "", False)] += 1
    for name, state in flow.states.items():
        for t in state.transitions:
            detail = t.expression if t.condition == "expression" else t.condition_value
            condition = f"{t.condition}: {graph.shorten(detail)}" if detail else t.condition
            label = f"{condition}\np={t.priority}"
            edges[(state_label(flow, name), state_label(flow, t.target_state), label, False)] += 1
        for action in [*state.entry_actions, *(a for t in state.transitions for a in t.actions)]:
            if action.type == "trigger_flow":
                sub_flow = f"flow:{action.params()['flow_id']}"
                edges[(state_label(flow, name), sub_flow, "trigger_flow", True)] += 1
                return_state = state_label(flow, action.params()["return_state"])
                edges[(sub_flow, return_state, "return", True)] += 1
    handlers = flow.global_handlers
    for intent, handler in handlers.intents.items():
        label = f"{intent} (resume)" if handler.resume else intent
        edges[("global handlers", state_label(flow, handler.target_state), label, True)] += 1
    if handlers.no_match and handlers.no_match.target_state:
        label = f"no_match after {handlers.no_match.max_consecutive}"
        edges[("global handlers", state_label(flow, handlers.no_match.target_state), label, True)] += 1
    if handlers.error_state:
        edges[("global handlers", state_label(flow, handlers.error_state), "error", True)] += 1
    return edges


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.stem)
def test_every_state_and_edge_is_drawn(path: Path, fmt: str) -> None:
    flow = load(path)
    render, parse = PARSERS[fmt]
    nodes, edges = parse(render(flow, REGISTRY))
    labels = set(nodes.values())
    assert {state_label(flow, name) for name in flow.states} <= labels
    assert Counter(edges) == expected_edges(flow)
    assert render(load(path), REGISTRY) == render(flow, REGISTRY), "output must be deterministic"


def test_sub_flow_links_are_drawn() -> None:
    nodes, edges = parse_dot(to_dot(load(next(p for p in FLOWS if p.stem == "support")), REGISTRY))
    assert "flow:collect_contact" in nodes.values()
    assert ("escalate\nresponse", "flow:collect_contact", "trigger_flow", True) in edges
    assert ("flow:collect_contact", "open_ticket\nresponse", "return", True) in edges


@needs_graphviz
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.stem)
def test_svg_is_well_formed_and_names_every_state(path: Path) -> None:
    flow = load(path)
    root = ET.fromstring(to_svg(flow, REGISTRY))
    texts = {el.text for el in root.iter("{http://www.w3.org/2000/svg}text")}
    assert set(flow.states) <= texts


TRICKY = 'say "hi" <b>|x|\nnext [1] {2} (3) #4; & `5` \\N end'


def tricky_flow() -> Flow:
    """State names, intents and expressions with every character the formats treat specially."""
    return Flow.model_validate(
        {
            "flow_id": "tricky",
            "tenant_id": "demo",
            "name": 'Tricky "quotes" <flow>',
            "version": "1.0.0",
            "initial_state": TRICKY,
            "states": {
                TRICKY: {
                    "type": "response",
                    "config": {"response_templates": {"default": "hi"}},
                    "transitions": [
                        {
                            "condition": "expression",
                            "expression": 'slots.a == "<|>" or "\\"" in x',
                            "target_state": "end",
                        }
                    ],
                },
                "end": {"type": "end"},
                "a-b": {"type": "end"},
                "a_b": {"type": "end"},
                "graph": {"type": "end"},
            },
            "global_handlers": {"intents": {'he"lp|<x>': {"target_state": "a-b"}}},
        }
    )


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_labels_are_escaped(fmt: str) -> None:
    flow = tricky_flow()
    render, parse = PARSERS[fmt]
    nodes, edges = parse(render(flow, REGISTRY))
    assert len(set(nodes)) == len(nodes) == len(flow.states) + 2  # + start and global handlers
    assert {state_label(flow, name) for name in flow.states} <= set(nodes.values())
    assert Counter(edges) == expected_edges(flow)


@needs_graphviz
def test_svg_of_tricky_names() -> None:
    root = ET.fromstring(to_svg(tricky_flow(), REGISTRY))
    texts = {el.text for el in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {*TRICKY.split("\n"), "a-b", "a_b", "graph", "end"} <= texts


def test_missing_graphviz_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="Debian package graphviz"):
        to_svg(tricky_flow(), REGISTRY)


def broken_pizza() -> Flow:
    """The pizza flow with a typo in a transition target, a missing global handler target and an
    initial state that does not exist: still a ``Flow`` model (only the reference checks fail)."""
    document = json.loads(next(p for p in FLOWS if p.stem == "pizza").read_text())
    document["states"]["take_order"]["transitions"][1]["target_state"] = "pick_unit_prize"
    document["global_handlers"]["intents"]["help"]["target_state"] = "helpdesk"
    document["initial_state"] = "welcome"
    return Flow.model_validate(document)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_missing_states_are_drawn_once_as_missing(fmt: str) -> None:
    render, parse = PARSERS[fmt]
    nodes, edges = parse(render(broken_pizza(), REGISTRY))
    missing = {label for label in nodes.values() if label.endswith("\nmissing state")}
    assert missing == {"pick_unit_prize\nmissing state", "helpdesk\nmissing state", "welcome\nmissing state"}
    assert ("take_order\nslot_filling", "pick_unit_prize\nmissing state", "slot_filled\np=20", False) in edges
    assert ("start", "welcome\nmissing state", "", False) in edges


def test_graph_data_names_the_state_and_transition_of_every_id() -> None:
    flow = load(next(p for p in FLOWS if p.stem == "pizza"))
    data = graph.graph_data(flow, REGISTRY)
    nodes = {node["id"]: node for node in data["nodes"]}
    assert {node["state"] for node in nodes.values() if node["kind"] in ("state", "end")} == set(flow.states)
    assert nodes[data["initial"]]["state"] == flow.initial_state
    assert nodes[graph.START_ID]["kind"] == "start"
    transitions = {(e["state"], e["transition"]): e for e in data["edges"] if e["state"] is not None}
    expected = {(name, i) for name, state in flow.states.items() for i in range(len(state.transitions))}
    assert set(transitions) == expected
    for (name, index), edge in transitions.items():
        assert nodes[edge["source"]]["state"] == name
        assert nodes[edge["target"]]["state"] == flow.states[name].transitions[index].target_state
    assert data["edges"][0] == {
        "id": graph.START_EDGE_ID,
        "source": graph.START_ID,
        "target": data["initial"],
        "lines": [],
        "dashed": False,
        "state": None,
        "transition": None,
    }
    assert len({edge["id"] for edge in data["edges"]}) == len(data["edges"])


@needs_graphviz
@pytest.mark.parametrize("flow", [tricky_flow(), broken_pizza()], ids=["tricky", "broken"])
def test_svg_element_ids_are_the_graph_data_ids(flow: Flow) -> None:
    """What a client maps: each node and edge of the SVG has the id ``graph_data`` describes."""
    root = ET.fromstring(to_svg(flow, REGISTRY))
    ids = {
        kind: {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == kind}
        for kind in ("node", "edge")
    }
    data = graph.graph_data(flow, REGISTRY)
    assert ids["node"] == {node["id"] for node in data["nodes"]}
    assert ids["edge"] == {edge["id"] for edge in data["edges"]}

"""Drawing a flow as a graph: Mermaid for docs and browsers, DOT and SVG through Graphviz.

Every format is rendered from one neutral list of nodes and edges (``build_graph``), so they
always show the same thing; only quoting differs. Node ids are generated, never the raw state
names: state names may contain anything a JSON key can, and words such as ``end`` or ``graph``
are keywords in Mermaid and DOT. Output follows document order, so it is stable.

The DOT (and so the SVG) carries those ids as element ids, nodes by their node id and edges as
``edge_<n>`` (their place in the list), and ``graph_data`` lists the same ids with the state and
transition each one stands for: a client such as the playground lights a state or a taken
transition in the SVG without guessing from labels.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import ValidationError

from mcp_engine.flow.models import Action, Flow, State, Transition
from mcp_engine.registry import Registry

NodeKind = Literal["start", "state", "end", "global", "flow", "missing"]
START_ID = "start__"
START_EDGE_ID = "edge_start"
GLOBAL_ID = "global__"
LABEL_CHARS = 48
ID_CHARS = 40


@dataclass(frozen=True)
class Node:
    """A box to draw; ``lines`` is its label, one entry per line; ``state`` the state it stands for
    (a ``missing`` node is a state that transitions name but the document lacks)."""

    id: str
    lines: tuple[str, ...]
    kind: NodeKind
    state: str | None = None


@dataclass(frozen=True)
class Edge:
    """An arrow; dashed ones are not transitions (global handlers, sub-flow links). A transition's
    edge names its state and its index in that state's ``transitions`` (as the turn's events do)."""

    source: str
    target: str
    lines: tuple[str, ...]
    dashed: bool = False
    state: str | None = None
    transition: int | None = None


@dataclass(frozen=True)
class Graph:
    """What both formats draw; ``initial`` is the id the start point leads to."""

    title: str
    initial: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """Collapse whitespace and cut to ``limit`` characters: an edge label is a hint, not the source."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def condition_label(transition: Transition) -> tuple[str, ...]:
    """``intent_match: order_pizza`` / ``expression: variables.price > 50`` and ``p=10``."""
    head = transition.condition
    detail = transition.expression or transition.condition_value  # a valid flow sets at most the one read
    if detail:
        head = f"{head}: {shorten(detail)}"
    return head, f"p={transition.priority}"


class _Ids:
    """Unique, format-safe node ids (``st_main_menu``), assigned in document order."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], str] = {}
        self._used = {START_ID, GLOBAL_ID}

    def names(self, prefix: str) -> list[str]:
        """Every name given an id under ``prefix``, in the order first asked for."""
        return [name for kind, name in self._by_key if kind == prefix]

    def get(self, prefix: str, name: str) -> str:
        key = (prefix, name)
        if key not in self._by_key:
            base = f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)[:ID_CHARS]}"
            candidate, n = base, 1
            while candidate in self._used:
                n += 1
                candidate = f"{base}_{n}"
            self._used.add(candidate)
            self._by_key[key] = candidate
        return self._by_key[key]


def _links(action: Action, registry: Registry) -> tuple[list[str], list[str]]:
    """The flows and the states an action names (a sub-flow and its return state), by its references."""
    cls = registry.actions.get(action.type)
    if cls is None:
        return [], []
    try:
        refs = list(cls.references(cls.Config.model_validate(action.params())))
    except ValidationError:  # a flow with errors is still drawn, without this action's links
        return [], []
    return [r.value for r in refs if r.kind == "flow"], [r.value for r in refs if r.kind == "state"]


def _implied(name: str, state: State, registry: Registry) -> list[Transition]:
    """The transitions a state's config implies (``StateType.implied_transitions``), drawn after its own
    and numbered after them, as the turn numbers them."""
    cls = registry.state_types.get(state.type)
    if cls is None:
        return []
    try:
        plugin = cls(name, cls.Config.model_validate(state.config))
        return [Transition.model_validate(t) for t in plugin.implied_transitions()]
    except ValidationError:  # a flow with errors is still drawn, without these
        return []


def build_graph(flow: Flow, registry: Registry) -> Graph:
    """Every state, transition, global handler and sub-flow link of ``flow`` as nodes and edges."""
    ids = _Ids()
    initial = ids.get("st", flow.initial_state)
    nodes: list[Node] = []
    edges: list[Edge] = []
    sub_flows: dict[str, Node] = {}
    seen_links: set[Edge] = set()

    def link_sub_flows(source: str, actions: list[Action]) -> None:
        for action in actions:
            flow_ids, states = _links(action, registry)
            for flow_id in flow_ids:
                node = sub_flows.setdefault(
                    flow_id, Node(ids.get("fl", flow_id), (f"flow:{flow_id}",), "flow")
                )
                links = [Edge(source, node.id, (action.type,), dashed=True)]
                links += [Edge(node.id, ids.get("st", state), ("return",), dashed=True) for state in states]
                for edge in links:
                    if edge not in seen_links:
                        seen_links.add(edge)
                        edges.append(edge)

    for name, state in flow.states.items():
        source = ids.get("st", name)
        state_type = registry.state_types.get(state.type)
        ends = state_type is not None and state_type.ends_run
        nodes.append(Node(source, (name, state.type), "end" if ends else "state", name))
        link_sub_flows(source, state.entry_actions)
        for index, transition in enumerate([*state.transitions, *_implied(name, state, registry)]):
            target = ids.get("st", transition.target_state)
            edges.append(Edge(source, target, condition_label(transition), state=name, transition=index))
            link_sub_flows(source, transition.actions)
        link_sub_flows(source, state.exit_actions)
    nodes.extend(sub_flows.values())

    handlers = flow.global_handlers
    handler_edges = [
        Edge(GLOBAL_ID, ids.get("st", h.target_state), (f"{intent} (resume)" if h.resume else intent,), True)
        for intent, h in handlers.intents.items()
    ]
    if handlers.no_match and handlers.no_match.target_state:
        label = f"no_match after {handlers.no_match.max_consecutive}"
        handler_edges.append(Edge(GLOBAL_ID, ids.get("st", handlers.no_match.target_state), (label,), True))
    if handlers.error_state:
        handler_edges.append(Edge(GLOBAL_ID, ids.get("st", handlers.error_state), ("error",), True))
    missing = (name for name in ids.names("st") if name not in flow.states)
    nodes.extend(Node(ids.get("st", name), (name, "missing state"), "missing", name) for name in missing)
    if handler_edges:
        nodes.append(Node(GLOBAL_ID, ("global handlers",), "global"))
        edges.extend(handler_edges)
    return Graph(f"{flow.name} v{flow.version}", initial, tuple(nodes), tuple(edges))


def edge_id(index: int) -> str:
    """The id of the ``index``-th edge of ``Graph.edges`` in the DOT, the SVG and ``graph_data``."""
    return f"edge_{index}"


def graph_data(flow: Flow, registry: Registry) -> dict[str, Any]:
    """The graph as JSON-ready data: what each node and edge id of the DOT/SVG stands for. The start
    point and its arrow to the initial state come first; a transition's edge names its state and index."""
    graph = build_graph(flow, registry)
    start = Node(START_ID, (), "start")
    entry = Edge(START_ID, graph.initial, ())
    nodes = [{**asdict(node), "lines": list(node.lines)} for node in (start, *graph.nodes)]
    edges = [
        {"id": edge_id(n) if n >= 0 else START_EDGE_ID, **asdict(edge), "lines": list(edge.lines)}
        for n, edge in enumerate((entry, *graph.edges), start=-1)
    ]
    return {
        "flow_id": flow.flow_id,
        "version": flow.version,
        "title": graph.title,
        "initial": graph.initial,
        "nodes": nodes,
        "edges": edges,
    }


_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _.,:=!?+*/'-]")
_MERMAID_SHAPES: dict[NodeKind, tuple[str, str]] = {
    "state": ("(", ")"),
    "end": ("([", "])"),
    "global": ("{{", "}}"),
    "flow": ("[[", "]]"),
    "missing": ("[/", "/]"),
}


def mermaid_text(lines: tuple[str, ...]) -> str:
    """A quoted Mermaid label: every character outside a plain set becomes an entity (``#34;``)."""
    split = (part for line in lines for part in line.splitlines() or [""])
    escaped = ("".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in part) for part in split)
    return '"' + "<br/>".join(escaped) + '"'


def to_mermaid(flow: Flow, registry: Registry) -> str:
    """A Mermaid ``flowchart``: rounded states, stadium-shaped ends, subroutine-shaped sub-flows."""
    graph = build_graph(flow, registry)
    title = json.dumps(graph.title, ensure_ascii=False)  # a JSON string is a valid YAML scalar
    out = ["---", f"title: {title}", "---", "flowchart TD", f'    {START_ID}(("start"))']
    for node in graph.nodes:
        left, right = _MERMAID_SHAPES[node.kind]
        out.append(f"    {node.id}{left}{mermaid_text(node.lines)}{right}")
    out.append(f"    {START_ID} --> {graph.initial}")
    for edge in graph.edges:
        arrow = "-.->" if edge.dashed else "-->"
        out.append(f"    {edge.source} {arrow}|{mermaid_text(edge.lines)}| {edge.target}")
    out.append("    classDef endState stroke-width:3px")
    out.append("    classDef initialState stroke-width:3px,font-weight:bold")
    ends = [node.id for node in graph.nodes if node.kind == "end"]
    if ends:
        out.append(f"    class {','.join(ends)} endState")
    out.append(f"    class {graph.initial} initialState")
    return "\n".join(out) + "\n"


def dot_text(lines: tuple[str, ...]) -> str:
    """A quoted DOT string; backslashes are doubled so ``\\N`` and friends stay literal."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for line in lines)
    return '"' + "\\n".join(escaped) + '"'


_DOT_STYLES: dict[NodeKind, str] = {
    "state": 'shape=box, style="rounded"',
    "end": 'shape=box, style="rounded,bold", peripheries=2',
    "global": 'shape=hexagon, style="dashed"',
    "flow": "shape=component",
    "missing": 'shape=box, style="dashed", color="#b91c1c", fontcolor="#b91c1c"',
}


def to_dot(flow: Flow, registry: Registry) -> str:
    """A Graphviz ``digraph``; the initial state is bold and entered from a start point. Nodes and
    edges carry ``id`` attributes (the ids of ``graph_data``), which Graphviz copies into its SVG."""
    graph = build_graph(flow, registry)
    out = [
        f"digraph {dot_text((flow.flow_id,))} {{",
        f"    graph [label={dot_text((graph.title,))}, labelloc=t, fontname=Helvetica];",
        "    node [fontname=Helvetica];",
        "    edge [fontname=Helvetica, fontsize=10];",
        f'    {START_ID} [label="", shape=point, width=0.15, id="{START_ID}"];',
    ]
    for node in graph.nodes:
        style = _DOT_STYLES[node.kind] + (", penwidth=2" if node.id == graph.initial else "")
        out.append(f'    {node.id} [label={dot_text(node.lines)}, {style}, id="{node.id}"];')
    out.append(f'    {START_ID} -> {graph.initial} [id="{START_EDGE_ID}"];')
    for n, edge in enumerate(graph.edges):
        style = ", style=dashed" if edge.dashed else ""
        out.append(
            f'    {edge.source} -> {edge.target} [label={dot_text(edge.lines)}{style}, id="{edge_id(n)}"];'
        )
    out.append("}")
    return "\n".join(out) + "\n"


def to_svg(flow: Flow, registry: Registry, timeout: float = 20.0) -> str:
    """Render ``to_dot`` with Graphviz's ``dot -Tsvg``; Graphviz is a system tool, not a wheel."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "Graphviz 'dot' was not found on PATH: install the Debian package graphviz "
            "(apt-get install graphviz) to render SVG, or use --format mermaid|dot"
        )
    try:
        result = subprocess.run(
            [dot, "-Tsvg"],
            input=to_dot(flow, registry).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"Graphviz 'dot' did not finish within {timeout:g} s") from exc
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"Graphviz 'dot' failed (exit {result.returncode}): {message}")
    return result.stdout.decode()

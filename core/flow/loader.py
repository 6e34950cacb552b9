"""Reading flow documents from JSON or YAML text, keeping enough of the source to give line numbers.

Values come from the strict parsers (json / yaml.safe_load); line numbers come from PyYAML's node
tree (JSON is YAML), built only when there is a problem to locate.

Every reader (``mcp-engine validate``, ``serve --flows``, ``chat``, flow tests, REST bodies through
``parse_document``) comes through ``parse_text``, which bounds what a document may cost to read: its size
in bytes (``MCP_MAX_FLOW_BYTES``) and, for YAML, its aliases: how many (``MCP_MAX_YAML_ALIASES``) and how
many values they expand to (``MAX_YAML_VALUES``), checked on the node graph before any value is built. A
"billion laughs" of 456 bytes took 57 s and 4.5 GB before (issue 17); now it is a problem with its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mcp_engine.errors import FlowValidationError, PayloadTooLarge
from mcp_engine.flow.limits import MAX_YAML_VALUES, FlowLimits, flow_limits
from mcp_engine.flow.problems import Problem

Format = Literal["json", "yaml"]
FLOW_SUFFIXES = (".json", ".yaml", ".yml")
TEST_SUFFIXES = (".test.json", ".test.yaml", ".test.yml")  # flow test files (mcp_engine.flowtest)


@dataclass
class Source:
    """A parsed document and where it came from."""

    data: Any
    name: str | None = None
    text: str | None = None
    _lines: dict[str, int] | None = field(default=None, repr=False)

    def line_of(self, pointer: str) -> int | None:
        """The 1-based line of the value at ``pointer``, or of its nearest existing parent."""
        if self.text is None:
            return None
        if self._lines is None:
            self._lines = _line_map(self.text)
        while True:
            if pointer in self._lines:
                return self._lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _line_map(text: str) -> dict[str, int]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    stack: list[tuple[str, yaml.Node]] = [("", root)] if root is not None else []
    while stack:
        ptr, node = stack.pop()
        # A key's own line (set below) is where a designer looks: keep it over the value's line.
        lines.setdefault(ptr, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{ptr}/{_escape(str(key.value))}"
                lines[child] = key.start_mark.line + 1
                stack.append((child, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((f"{ptr}/{i}", item) for i, item in enumerate(node.value))
    return lines


def detect_format(name: str | None, text: str) -> Format:
    if name and name.lower().endswith((".yaml", ".yml")):
        return "yaml"
    if name and name.lower().endswith(".json"):
        return "json"
    return "json" if text.lstrip().startswith(("{", "[")) else "yaml"


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def parse_document(data: bytes | str, *, source: str) -> Any:
    """The value of a JSON or YAML document (JSON when it starts with ``{`` or ``[``, or ``source`` ends
    in .json; YAML when it ends in .yaml/.yml), within the limits; ``PayloadTooLarge`` (413) over the
    bytes, ``FlowValidationError`` (422, the problem with its line) when it does not parse or its aliases
    expand too far. ``source`` names the document in messages (a file name, "request body")."""
    limits = flow_limits()
    size = len(data) if isinstance(data, bytes) else len(data.encode())
    if size > limits.max_flow_bytes:
        raise PayloadTooLarge(_too_large(size, limits).message, {"limit": limits.max_flow_bytes})
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FlowValidationError([_not_utf8(exc)], source) from None
    parsed, problem = parse_text(data, source, limits=limits)
    if parsed is None:
        raise FlowValidationError([problem] if problem else [], source)
    return parsed.data


def parse_text(
    text: str,
    name: str | None = None,
    fmt: Format | None = None,
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
    limits: FlowLimits | None = None,
) -> tuple[Source | None, Problem | None]:
    """Parse ``text``; on a syntax error (or a limit hit) return the problem with its line and column.
    ``loader``: a ``SafeLoader`` subclass (flow tests read YAML 1.2 booleans, so ``user: no`` is text)."""
    limits = limits or flow_limits()
    size = len(text.encode())
    if size > limits.max_flow_bytes:
        return None, _too_large(size, limits)
    fmt = fmt or detect_format(name, text)
    if fmt == "json":
        try:
            return Source(json.loads(text), name, text), None
        except json.JSONDecodeError as exc:
            return None, Problem(
                "error", "", f"not valid JSON: {exc.msg}", "json-syntax", exc.lineno, exc.colno
            )
    try:
        return Source(_load_yaml(text, loader, limits), name, text), None
    except _Refused as refused:
        return None, refused.problem
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        return None, Problem("error", "", f"not valid YAML: {reason}", "yaml-syntax", line, column)


def _load_yaml(text: str, loader_class: type[yaml.SafeLoader], limits: FlowLimits) -> Any:
    """``yaml.load`` in its two steps: compose the node graph, check its aliases, then build the values."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node, limits)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(root: yaml.Node, limits: FlowLimits) -> None:
    """``_Refused`` when the document uses more aliases than allowed, expands to more than
    ``MAX_YAML_VALUES`` values, or refers to itself. One pass over the distinct nodes (each node's
    expanded size is computed once), so the check itself cannot blow up."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if children_done:
            visiting.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_YAML_VALUES:
                message = f"its aliases expand to more than {MAX_YAML_VALUES} values"
                raise _Refused(Problem("error", "", message, "yaml-aliases", line))
        elif key in sizes:
            aliases += 1
            if aliases > limits.max_yaml_aliases:
                message = f"more than {limits.max_yaml_aliases} aliases (MCP_MAX_YAML_ALIASES)"
                raise _Refused(Problem("error", "", message, "yaml-aliases", line))
        elif key in visiting:
            raise _Refused(Problem("error", "", "an alias refers to its own anchor", "yaml-aliases", line))
        else:
            visiting.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _too_large(size: int, limits: FlowLimits) -> Problem:
    message = f"{size} bytes, over the limit of {limits.max_flow_bytes} (MCP_MAX_FLOW_BYTES)"
    return Problem("error", "", message, "too-large")


def _not_utf8(exc: UnicodeDecodeError) -> Problem:
    return Problem("error", "", f"not UTF-8 text (byte {exc.start})", "encoding")


def read_file(
    path: str | Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> tuple[Source | None, Problem | None]:
    """Read and parse a flow file; unreadable, oversized or non-UTF-8 files are problems, not exceptions."""
    path = Path(path)
    limits = flow_limits()
    try:
        if path.stat().st_size > limits.max_flow_bytes:
            return None, _too_large(path.stat().st_size, limits)
        raw = path.read_bytes()
    except OSError as exc:
        return None, Problem("error", "", f"cannot read file: {exc.strerror or exc}", "unreadable")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, _not_utf8(exc)
    return parse_text(text, str(path), loader=loader, limits=limits)


def is_test_file(path: Path) -> bool:
    """A flow test file (``pizza.test.yaml``): it lives beside the flows but is not one."""
    return path.name.lower().endswith(TEST_SUFFIXES)


def flow_files(folder: Path) -> list[Path]:
    """The flow documents of a folder (``serve --flows``, flow tests), in file-name order: every JSON or
    YAML file directly in it except the flow test files."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in FLOW_SUFFIXES and p.is_file() and not is_test_file(p)
    )

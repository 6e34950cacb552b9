"""Reading flow documents from JSON or YAML text, keeping enough of the source to give line numbers.

Values come from the strict parsers (json / yaml.safe_load); line numbers come from PyYAML's node
tree (JSON is YAML), built only when there is a problem to locate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mcp_engine.flow.problems import Problem

Format = Literal["json", "yaml"]
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
# libyaml's safe loader where PyYAML was built with it: the same documents, about 5x faster (measured)
FAST_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_EXPANDED_NODES = 200_000  # what a YAML document may grow to through its aliases ("billion laughs")
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


def parse_text(
    text: str,
    name: str | None = None,
    fmt: Format | None = None,
    loader: type[yaml.SafeLoader] = yaml.SafeLoader,
) -> tuple[Source | None, Problem | None]:
    """Parse ``text``; on a syntax error return the problem with its line and column. ``loader``: a
    ``SafeLoader`` subclass (flow tests read YAML 1.2 booleans, so ``user: no`` is text)."""
    fmt = fmt or detect_format(name, text)
    if fmt == "json":
        try:
            return Source(json.loads(text), name, text), None
        except json.JSONDecodeError as exc:
            return None, Problem(
                "error", "", f"not valid JSON: {exc.msg}", "json-syntax", exc.lineno, exc.colno
            )
    try:
        return Source(yaml.load(text, Loader=loader), name, text), None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        return None, Problem("error", "", f"not valid YAML: {reason}", "yaml-syntax", line, column)


def parse_document(data: bytes | str, *, source: str) -> Any:
    """A document from bytes or text (JSON or YAML, safe loader) with its size and its expansion through
    YAML aliases bounded, so a "billion laughs" document is refused before anything walks it.
    ``FlowValidationError`` (422) with the problem's line when it is too large, expands too far, or does
    not parse; ``source`` names it in the message."""
    from mcp_engine.errors import FlowValidationError

    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DOCUMENT_BYTES:
        problem = Problem("error", "", f"larger than {MAX_DOCUMENT_BYTES} bytes", "too-large")
        raise FlowValidationError([problem], source)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = Problem("error", "", f"not UTF-8 (byte {exc.start})", "encoding")
        raise FlowValidationError([problem], source) from None
    loader = FAST_SAFE_LOADER(text)
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root) > MAX_EXPANDED_NODES:
            raise FlowValidationError(
                [
                    Problem(
                        "error",
                        "",
                        f"its aliases expand it past {MAX_EXPANDED_NODES} values (a YAML bomb?)",
                        "too-large",
                        root.start_mark.line + 1,
                    )
                ],
                source,
            )
        return None if root is None else loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        problem = Problem("error", "", f"not valid YAML or JSON: {reason}", "yaml-syntax", line)
        raise FlowValidationError([problem], source) from None
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has once every alias is expanded (each node's size counted once); a
    recursive alias (an anchor used inside itself) never ends, so it is past any bound."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done and id(node) in open_nodes:
            return MAX_EXPANDED_NODES + 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 0) for c in children)
            open_nodes.discard(id(node))
        else:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def read_file(
    path: str | Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> tuple[Source | None, Problem | None]:
    """Read and parse a flow file; unreadable, oversized or non-UTF-8 files are problems, not exceptions."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, Problem("error", "", f"cannot read file: {exc.strerror or exc}", "unreadable")
    if len(raw) > MAX_DOCUMENT_BYTES:
        return None, Problem("error", "", f"file is larger than {MAX_DOCUMENT_BYTES} bytes", "too-large")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, Problem("error", "", f"not UTF-8 text (byte {exc.start})", "encoding")
    return parse_text(text, str(path), loader=loader)


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

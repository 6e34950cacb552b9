"""The engine's own typed expression AST. Positions are 1-based columns into the source text.

Parsing produces only these nodes; anything the language does not list is rejected by the
parser, so evaluation and the ruleset compiler can trust the tree's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal as L

ROOT_NAMES = frozenset(
    {
        "slots",
        "variables",
        "user_profile",
        "intent",
        "event",
        "integration_results",
        "context",
        "slot_filling",
    }
)
FUNCTIONS = frozenset({"len", "lower", "upper", "int", "float", "str"})

Scalar = None | bool | int | float | str
CompareOp = L["==", "!=", "<", "<=", ">", ">=", "in", "not in", "matches"]
ArithOp = L["+", "-", "*", "/", "%"]


@dataclass(frozen=True, slots=True)
class Node:
    col: int


@dataclass(frozen=True, slots=True)
class Const(Node):
    value: Scalar


@dataclass(frozen=True, slots=True)
class ListOf(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Name(Node):
    """One of ``ROOT_NAMES``."""

    name: str


@dataclass(frozen=True, slots=True)
class Attr(Node):
    """``obj.key``: a key of a mapping (never an attribute of a Python object)."""

    obj: Node
    key: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    """``obj[key]`` with a constant key: a mapping key or a list position."""

    obj: Node
    key: str | int


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Arith(Node):
    op: ArithOp
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: CompareOp
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: L["and", "or"]
    values: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call(Node):
    """One of ``FUNCTIONS`` applied to its arguments."""

    func: str
    args: tuple[Node, ...]


def path_of(node: Node) -> tuple[str | int, ...] | None:
    """``slots.size`` -> ("slots", "size"); None when the node is not a plain dotted path."""
    parts: list[str | int] = []
    while isinstance(node, Attr | Index):
        parts.append(node.key)
        node = node.obj
    if not isinstance(node, Name):
        return None
    parts.append(node.name)
    return tuple(reversed(parts))

"""Text -> the engine's expression AST (``nodes.py``), accepting only the language of SPEC §4.

Python's own parser does the grammar: the text is wrapped as ``(\\n<text>\\n)`` so leading spaces and
line breaks are allowed, and the ``matches`` operator is swapped for ``is`` padded to the same width, so
every position Python reports is still the user's position. The resulting Python AST is then translated
node by node against an allow-list; whatever is not listed is an error pointing at its column.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import re
import tokenize
import warnings
from bisect import bisect_left
from typing import Final, Literal

from mcp_engine.expressions.nodes import (
    FUNCTIONS,
    ROOT_NAMES,
    Arith,
    ArithOp,
    Attr,
    BoolOp,
    Call,
    Compare,
    CompareOp,
    Const,
    Index,
    ListOf,
    Name,
    Neg,
    Node,
    Not,
    Scalar,
    path_of,
)
from mcp_engine.regexes import PatternError, compile_regex

MAX_LENGTH: Final = 10_000
MAX_DEPTH: Final = 50
_MAX_INT_LITERAL: Final = 10**30
_ARITY: Final = dict.fromkeys(FUNCTIONS, 1)  # every function of the language takes one argument
_LITERAL_NAMES: Final = {"true": True, "false": False, "null": None}
_CLOSERS: Final = {")": "(", "]": "[", "}": "{"}
_ARITH: Final[dict[type[ast.operator], ArithOp]] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%",
}  # fmt: skip
_COMPARE: Final[dict[type[ast.cmpop], CompareOp]] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "matches",
}  # fmt: skip
_UNSUPPORTED: Final[dict[type[ast.AST], str]] = {
    ast.Lambda: "lambdas", ast.IfExp: "conditional expressions", ast.NamedExpr: "assignment expressions (:=)",
    ast.JoinedStr: "f-strings", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions", ast.Dict: "dict literals",
    ast.Set: "set literals", ast.Tuple: "tuples (use a list)", ast.Starred: "starred expressions",
    ast.Slice: "slices", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}  # fmt: skip


class ExpressionError(ValueError):
    """An expression that is not in the language; ``column`` is the 1-based character position in the
    source (the column, for one-line expressions), None when no single place is to blame."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        return f"column {self.column}: {self.message}" if self.column is not None else self.message


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """Parse ``text`` or raise ExpressionError; no other exception escapes, whatever the text.

    Cached, because many transitions of many flows share the same few expressions."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("empty expression", 1)
    try:
        return _Parser(text).run()
    except ExpressionError:
        raise
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is too complex") from None
    except Exception as exc:  # random text must only ever produce ExpressionError
        raise ExpressionError(f"invalid expression ({type(exc).__name__})") from None


class _Parser:
    """One parse: the source, its position mapping, and the allow-list translation."""

    def __init__(self, text: str) -> None:
        # Python also breaks lines at "\r"; same-width replacements keep every offset.
        self.text = text.replace("\r\n", " \n").replace("\r", "\n")
        self.lines = self.text.split("\n")
        self.starts = [0]  # offset of each line in the text
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)
        self.ops: list[tuple[int, str]] = []  # (offset, operator) for pointing at unsupported operators

    def run(self) -> Node:
        source = self._scan()
        try:
            with warnings.catch_warnings():  # e.g. "is with a literal" for `x matches "a"`
                warnings.simplefilter("ignore")
                tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            message = re.sub(r" \(detected at line \d+\)", "", exc.msg)
            raise ExpressionError(message, self._col(exc.lineno or 0, (exc.offset or 1) - 1)) from None
        return self._node(tree.body, 1)

    # -- positions ----------------------------------------------------------------------------

    def _col(self, row: int, char_col: int) -> int:
        """Row/column in the wrapped text -> 1-based offset in the user's text."""
        if row < 2:
            return 1
        if row - 2 >= len(self.lines):
            return len(self.text) + 1
        return self.starts[row - 2] + min(char_col, len(self.lines[row - 2])) + 1

    def _byte_col(self, row: int, byte_col: int) -> int:
        """Like ``_col`` for the UTF-8 byte offsets that ``ast`` nodes carry."""
        line = self.lines[row - 2] if 2 <= row < len(self.lines) + 2 else ""
        chars = byte_col if line.isascii() else len(line.encode()[:byte_col].decode(errors="ignore"))
        return self._col(row, chars)

    def _node_col(self, node: ast.expr | ast.keyword) -> int:
        return self._byte_col(node.lineno, node.col_offset)

    def _end_col(self, node: ast.expr) -> int:
        return self._byte_col(node.end_lineno or node.lineno, node.end_col_offset or node.col_offset)

    def _op_col(self, left: ast.expr, right: ast.expr) -> int:
        """The column of the operator between two operands (ast keeps no position for it)."""
        start, end = self._end_col(left) - 1, self._node_col(right) - 1
        i = bisect_left(self.ops, (start, ""))
        while i < len(self.ops) and self.ops[i][0] < end:
            if self.ops[i][1] not in _CLOSERS:
                return self.ops[i][0] + 1
            i += 1
        return start + 1

    # -- tokens -------------------------------------------------------------------------------

    def _scan(self) -> str:
        """Check brackets and nesting before Python's parser sees the text, reject ``is``, and swap
        ``matches`` for ``is`` of the same width. Returns the text to hand to ``ast.parse``."""
        wrapped = "(\n" + self.text + "\n)"
        last_row = len(self.lines) + 1
        stack: list[tuple[str, int]] = []
        swaps: list[int] = []
        previous = ""
        try:
            for tok in tokenize.generate_tokens(io.StringIO(wrapped).readline):
                row, char_col = tok.start
                if not 2 <= row <= last_row:  # the wrapper's own parentheses
                    continue
                at = self.starts[row - 2] + char_col
                if tok.type == tokenize.OP:
                    self.ops.append((at, tok.string))
                    if tok.string in ("(", "[", "{"):
                        stack.append((tok.string, at))
                        if len(stack) > MAX_DEPTH:
                            raise ExpressionError(f"brackets nested deeper than {MAX_DEPTH} levels", at + 1)
                    elif tok.string in _CLOSERS and (not stack or stack.pop()[0] != _CLOSERS[tok.string]):
                        raise ExpressionError(f"unmatched '{tok.string}'", at + 1)
                elif tok.type == tokenize.NAME and tok.string == "is":
                    raise ExpressionError("'is' is not supported: use == (or 'matches' for a regex)", at + 1)
                elif tok.type == tokenize.NAME and tok.string == "matches" and previous != ".":
                    swaps.append(at + 2)
                if tok.type not in (tokenize.NL, tokenize.COMMENT):
                    previous = tok.string
        except (tokenize.TokenError, SyntaxError):
            if stack:
                raise ExpressionError(f"'{stack[-1][0]}' was never closed", stack[-1][1] + 1) from None
            # anything else: Python's parser below says what is wrong, and where
        for at in swaps:
            wrapped = wrapped[:at] + "is     " + wrapped[at + len("matches") :]
        return wrapped

    # -- translation --------------------------------------------------------------------------

    def _node(self, node: ast.expr, depth: int) -> Node:
        col = self._node_col(node)
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", col)
        deeper = depth + 1
        match node:
            case ast.Constant(value=value):
                return Const(col, _literal(value, col))
            case ast.Name(id=name):
                return self._name(name, col)
            case ast.Attribute(value=obj, attr=attr):
                if attr.startswith("_"):
                    at = self._end_col(node) - len(attr)
                    raise ExpressionError(f"names starting with '_' are not allowed: {attr!r}", at)
                return Attr(col, self._path(obj, deeper), attr)
            case ast.Subscript(value=obj, slice=key):
                return Index(col, self._path(obj, deeper), self._key(key, deeper))
            case ast.List(elts=items):
                return ListOf(col, tuple(self._node(item, deeper) for item in items))
            case ast.UnaryOp(op=op, operand=operand):
                return self._unary(op, operand, col, deeper)
            case ast.BinOp(left=left, op=op, right=right) if type(op) in _ARITH:
                return Arith(col, _ARITH[type(op)], self._node(left, deeper), self._node(right, deeper))
            case ast.BinOp(left=left, op=op, right=right):
                raise ExpressionError(
                    f"operator '{_op_text(op)}' is not supported", self._op_col(left, right)
                )
            case ast.BoolOp(op=op, values=values):
                kind: Literal["and", "or"] = "and" if isinstance(op, ast.And) else "or"
                return BoolOp(col, kind, tuple(self._node(value, deeper) for value in values))
            case ast.Compare(left=left, ops=ops, comparators=rights):
                return self._compare(left, ops, rights, col, deeper)
            case ast.Call():
                return self._call(node, col, deeper)
        what = _UNSUPPORTED.get(type(node), type(node).__name__)
        raise ExpressionError(f"{what} not allowed", col)

    def _name(self, name: str, col: int) -> Node:
        if name in ROOT_NAMES:
            return Name(col, name)
        if name in _LITERAL_NAMES:
            return Const(col, _LITERAL_NAMES[name])
        if name in FUNCTIONS:
            raise ExpressionError(f"{name!r} is a function: call it, as in {name}(...)", col)
        raise ExpressionError(f"unknown name {name!r} (known: {', '.join(sorted(ROOT_NAMES))})", col)

    def _path(self, node: ast.expr, depth: int) -> Node:
        """Dotted access and subscripts read data, so they apply only to names and their paths."""
        translated = self._node(node, depth)
        if path_of(translated) is None:
            raise ExpressionError(
                "only names and their fields can be read with '.' or '[...]'", translated.col
            )
        return translated

    def _key(self, node: ast.expr, depth: int) -> str | int:
        key = self._node(node, depth)
        if isinstance(key, Const) and isinstance(key.value, str | int) and not isinstance(key.value, bool):
            return key.value
        raise ExpressionError("an index must be a constant string or integer", key.col)

    def _unary(self, op: ast.unaryop, operand: ast.expr, col: int, depth: int) -> Node:
        if isinstance(op, ast.Not):
            return Not(col, self._node(operand, depth))
        if isinstance(op, ast.Invert):
            raise ExpressionError("operator '~' is not supported", col)
        inner = self._node(operand, depth)
        value = inner.value if isinstance(inner, Const) else None
        if isinstance(value, int | float) and not isinstance(value, bool):  # fold signed literals: -1
            return Const(col, -value if isinstance(op, ast.USub) else value)
        # unary plus keeps numbers and, like minus, turns anything else into null
        return Neg(col, inner) if isinstance(op, ast.USub) else Neg(col, Neg(col, inner))

    def _compare(
        self, left: ast.expr, ops: list[ast.cmpop], rights: list[ast.expr], col: int, depth: int
    ) -> Node:
        """``a < b < c`` becomes ``a < b and b < c``."""
        pairs: list[Node] = []
        lhs = self._node(left, depth)
        for op, right in zip(ops, rights, strict=True):
            if type(op) not in _COMPARE:
                raise ExpressionError("'matches not' is not supported: write not (a matches b)", lhs.col)
            rhs = self._node(right, depth)
            if isinstance(op, ast.Is) and isinstance(rhs, Const) and isinstance(rhs.value, str):
                _check_pattern(rhs.value, rhs.col)
            pairs.append(Compare(lhs.col, _COMPARE[type(op)], lhs, rhs))
            lhs = rhs
        return pairs[0] if len(pairs) == 1 else BoolOp(col, "and", tuple(pairs))

    def _call(self, node: ast.Call, col: int, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"only the functions {known} can be called", col)
        name = node.func.id
        if name not in FUNCTIONS:
            raise ExpressionError(f"unknown function {name!r} (known: {', '.join(sorted(FUNCTIONS))})", col)
        if node.keywords:
            raise ExpressionError("keyword arguments are not allowed", self._node_col(node.keywords[0]))
        if len(node.args) != _ARITY[name]:
            raise ExpressionError(f"{name}() takes {_ARITY[name]} argument, got {len(node.args)}", col)
        return Call(col, name, tuple(self._node(arg, depth) for arg in node.args))


def _literal(value: object, col: int) -> Scalar:
    """Only JSON-like scalars of bounded size are literals."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) >= _MAX_INT_LITERAL:
            raise ExpressionError("integer literal has more than 30 digits", col)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError("number literal out of range", col)
        return value
    kind = {bytes: "bytes literals", complex: "complex numbers"}.get(type(value), repr(value))
    raise ExpressionError(f"{kind} not allowed", col)


def _op_text(op: ast.operator) -> str:
    return {
        ast.Pow: "**", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|",
        ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    }.get(type(op), type(op).__name__)  # fmt: skip


def _check_pattern(pattern: str, col: int) -> None:
    """A constant ``matches`` pattern is compiled now: a bad one (or one the linear-time engine cannot
    run) is a validation error, not a silent miss."""
    try:
        compile_regex(pattern)
    except PatternError as exc:
        raise ExpressionError(str(exc), col) from exc

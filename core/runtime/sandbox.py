"""The Jinja2 sandbox templates render in, with what could exhaust the engine bounded.

Jinja's ``SandboxedEnvironment`` keeps templates out of Python internals but lets them build values of
any size: a string doubled in a loop (``{% set ns.s = ns.s ~ ns.s %}``) reached 1.7 GB, an integer squared
in a loop blocked the server for seconds. Here every value a template *makes* is bounded, before it is
made where the size is known in advance, else as soon as it exists:

- strings and containers: ``MAX_VALUE_CHARS`` characters in all (a container counts its items and their
  contents, shared ones each time, so a list of one big string repeated is as big as it prints), checked on
  the result of every operator (``*``, ``+``, ``~``), call, method call (and on the object a method changed
  in place: ``ns.items.extend(ns.items)``) and filter; ``replace`` and ``join`` are checked before they run;
- integers: ``MAX_INT_BITS`` bits, checked before ``*`` and ``**`` and on every result;
- ``range()`` (``MAX_RANGE``), padding widths, format widths, loop nesting (``MAX_LOOP_DEPTH``, checked at
  compile time) and the output, as before;
- time: every operator, call, filter and loop iteration checks the turn's budget (``turnscope``), which a
  render narrows to ``MAX_RENDER_MS`` (``mcp_engine.runtime.templates``).

A bound hit raises ``SecurityError`` (or ``TurnOverrun``), which the template turns into a template error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from mcp_engine.runtime import turnscope

MAX_OUTPUT_CHARS = 10_000
MAX_VALUE_CHARS = 100_000  # any string or container a template builds, in characters and items
MAX_INT_BITS = 4_096
MAX_RANGE = 1_000  # items of one range(); chat text never lists more
MAX_LOOP_DEPTH = 2  # nested for-loops
MAX_EXPONENT = 64
MAX_INDENT_TEXT = 100  # an indent given as text ("--> ")
LOOP_BUDGET = "_loop_budget"  # the global every for-loop's iterable is passed through (see ``bound_loops``)

_SCALARS = frozenset({int, float, bool, type(None)})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# A width or precision of five digits or more in a %-format or str.format spec ("%99999999s", "{:>99999999}"),
# or one given as an argument ("%*s", "{:>{width}}"), which no chat text needs.
_WIDE_SPEC = re.compile(r"%[^a-zA-Z%]*(\d{5,}|\*)|\{[^{}]*:[^{}]*(\d{5,}|\{)")


def finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: nothing for None; a value too large to print is refused first."""
    if value is None:
        return ""
    check_size(value)
    return value


def size_of(value: Any, limit: int = MAX_VALUE_CHARS) -> int:
    """Characters and items in ``value`` (walked, not printed), counting at most up to past ``limit``: a
    container counts its length before its items are looked at, so an oversized one costs nothing."""
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        total += 1
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, Mapping | list | tuple | set | frozenset):
            total += len(item)
            if total <= limit:
                pending.extend(_nested(item.items() if isinstance(item, Mapping) else item))
    return total


def _nested(items: Iterable[Any]) -> Iterator[Any]:
    """What in ``items`` has a size of its own (a dict's items are key and value)."""
    for item in items:
        kind = type(item)
        if kind in _SCALARS:  # the common case first: the exact type test is what keeps a walk cheap
            continue
        if kind is tuple and len(item) == 2:  # a dict item, or a pair: both sides count
            yield from item
        elif isinstance(item, str | bytes | Mapping | list | tuple | set | frozenset):
            yield item


def check_size(value: Any) -> Any:
    """``value`` when it is within the bounds; ``SecurityError`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"integer of {value.bit_length()} bits is over the limit of {MAX_INT_BITS}")
    elif isinstance(value, str | bytes):
        if len(value) > MAX_VALUE_CHARS:
            raise SecurityError(f"text of {len(value)} characters is over the limit of {MAX_VALUE_CHARS}")
    elif isinstance(value, Mapping | list | tuple | set | frozenset) and size_of(value) > MAX_VALUE_CHARS:
        raise SecurityError(f"a value is larger than the limit of {MAX_VALUE_CHARS} characters and items")
    return value


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_OUTPUT_CHARS:
        raise SecurityError(f"width {width} is over the limit of {MAX_OUTPUT_CHARS}")
    if isinstance(width, str) and len(width) > MAX_INDENT_TEXT:
        raise SecurityError(f"indent text of {len(width)} characters is over the limit of {MAX_INDENT_TEXT}")


def _check_format(spec: Any) -> None:
    if isinstance(spec, str) and _WIDE_SPEC.search(spec):
        raise SecurityError("format width or precision is over the limit")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    """``text.replace(old, new)`` would stay within the bound."""
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        grows = (text.count(old) if old else len(text) + 1) * (len(new) - len(old))
        if len(text) + grows > MAX_VALUE_CHARS:
            raise SecurityError(f"replace would make more than {MAX_VALUE_CHARS} characters")


def _check_join(separator: Any, items: Any) -> None:
    """``separator.join(items)`` would stay within the bound."""
    if (
        isinstance(separator, str)
        and isinstance(items, list | tuple | str | range)
        and len(separator) * len(items) + size_of(items) > MAX_VALUE_CHARS
    ):
        raise SecurityError(f"join would make more than {MAX_VALUE_CHARS} characters")


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _bounded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise OverflowError(f"range of {len(items)} items is over the limit of {MAX_RANGE}")
    return items


def _loop_budget(items: Iterable[Any]) -> Iterator[Any]:
    """A for-loop's items, the turn's budget checked before each."""
    for item in items:
        turnscope.check()
        yield item


def _checked_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose result is size-checked (``replace``, ``join``, padding also before it runs)."""
    name = getattr(func, "__name__", "")

    @functools.wraps(func)  # keeps jinja_pass_arg: the filter still gets its context or environment
    def bounded(*args: Any, **kwargs: Any) -> Any:
        turnscope.check()
        values = [a for a in args if not isinstance(a, Context) and not hasattr(a, "autoescape")]
        if name == "do_replace" and len(values) >= 3:
            _check_replace(values[0], values[1], values[2])
        elif name in ("do_join", "sync_do_join") and values:
            _check_join(values[1] if len(values) > 1 else kwargs.get("d", ""), values[0])
        elif name in ("do_center", "do_indent") and len(values) > 1:
            _check_width(values[1])
        _check_width(kwargs.get("width"))
        return check_size(func(*args, **kwargs))

    return bounded


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, but ``~`` (``nodes.Concat``) goes through the environment's bounded join."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def bound_loops(ast: nodes.Template) -> nodes.Template:
    """Pass every for-loop's iterable through ``_loop_budget``, so a loop checks the time it takes."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name(LOOP_BUDGET, "load"), [loop.iter], [], None, None)
    return ast


def loop_depth(node: nodes.Node) -> int:
    """The deepest nesting of for-loops under ``node``."""
    depth = max((loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return depth + 1 if isinstance(node, nodes.For) else depth


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox plus the bounds of the module docstring.

    Intercepting the operators also stops Jinja from constant-folding them at compile time, so
    ``{{ 'a' * 10**9 }}`` cannot exhaust memory while a flow is being compiled either.
    """

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,
            undefined=ChainableUndefined,
            finalize=finalize,
            keep_trailing_newline=True,
        )
        del self.globals["lipsum"]  # lorem ipsum of any length: no use in chat text
        self.globals["range"] = _bounded_range
        self.globals[LOOP_BUDGET] = _loop_budget
        format_filter = self.filters["format"]

        def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_format(value)
            return format_filter(value, *args, **kwargs)

        self.filters["format"] = bounded_format
        self.filters = {name: _checked_filter(func) for name, func in self.filters.items()}

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b``: the parts as text, refused before joining when the result would be over the bound."""
        turnscope.check()
        texts = [part if isinstance(part, str) else str(check_size(part)) for part in parts]
        if sum(map(len, texts)) > MAX_VALUE_CHARS:
            raise SecurityError(f"text of more than {MAX_VALUE_CHARS} characters")
        return "".join(texts)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        turnscope.check()
        if operator_ == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    _check_width(len(seq) * count)
            if _ints(left, right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise SecurityError(f"product of more than {MAX_INT_BITS} bits")
        elif operator_ == "**" and isinstance(right, int | float):
            if abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
            if isinstance(left, int) and left.bit_length() * abs(right) > MAX_INT_BITS:
                raise SecurityError(f"power of more than {MAX_INT_BITS} bits")
        elif operator_ == "%":
            _check_format(left)
        elif operator_ == "+" and isinstance(left, str | list | tuple):
            # checked before it is built, so the result need not be walked again
            if size_of(right, MAX_VALUE_CHARS - size_of(left)) + size_of(left) > MAX_VALUE_CHARS:
                raise SecurityError(f"a value is larger than the limit of {MAX_VALUE_CHARS} characters")
            return super().call_binop(context, operator_, left, right)
        return check_size(super().call_binop(context, operator_, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        turnscope.check()
        owner = getattr(obj, "__self__", None)
        method = getattr(obj, "__name__", "")
        if isinstance(owner, str):
            if method in _PADDING_METHODS:
                for arg in (*args, *kwargs.values()):
                    _check_width(arg)
            elif method == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
            elif method == "join" and args:
                _check_join(owner, args[0])
        result = check_size(super().call(context, obj, *args, **kwargs))
        if isinstance(owner, list | dict | set):  # changed in place (append, extend, update, ...)
            check_size(owner)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # the sandbox wraps str.format when it is looked up, before any call
            _check_format(value.__self__)
        return wrapped

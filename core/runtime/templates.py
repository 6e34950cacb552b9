"""Message templates: Jinja2 in a sandbox, compiled once per flow version, rendered without failing a turn.

Templates are chat text written by flow designers (``"Your balance is {{ variables.balance }}"``), rendered
over the turn's namespace (``slots``, ``variables``, ``user_profile``, ``intent``, ``event``,
``integration_results``, ``context``). Hence:

- no autoescaping (this is not HTML), a missing name or key renders as nothing and so does ``None``
  (``{{ slots.size }}`` before the slot is filled; ``{{ user_profile.address.city }}`` with no address);
- the sandbox refuses Python internals (``''.__class__``, ``cycler.__init__.__globals__`` render as nothing),
  and what could exhaust the engine is bounded: ``range()`` (``MAX_RANGE``), repetition and powers, padding
  widths, loop nesting (``MAX_LOOP_DEPTH``, checked at compile time) and the output (``MAX_OUTPUT_CHARS``);
- rendering never raises: a template that fails at run time (``{{ slots.count + 1 }}`` with no count, a bound
  hit) logs a warning and renders its literal text with every ``{{ }}``/``{% %}`` part left empty, which reads
  better in a chat than half a sentence or raw template syntax.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 10_000
MAX_RANGE = 1_000  # items of one range(); chat text never lists more
MAX_LOOP_DEPTH = 2  # nested for-loops: with MAX_RANGE, at most a million iterations per render
MAX_EXPONENT = 64

_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# A width or precision of five digits or more in a %-format or str.format spec ("%99999999s", "{:>99999999}"),
# or one given as an argument ("%*s", "{:>{width}}"), which no chat text needs.
_WIDE_SPEC = re.compile(r"%[^a-zA-Z%]*(\d{5,}|\*)|\{[^{}]*:[^{}]*(\d{5,}|\{)")


class TemplateCompileError(ValueError):
    """A template that cannot be compiled (syntax, or too deeply nested loops), with its line."""

    def __init__(self, message: str, lineno: int | None) -> None:
        super().__init__(message if lineno is None else f"{message} (line {lineno})")
        self.lineno = lineno


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_OUTPUT_CHARS:
        raise SecurityError(f"width {width} is over the limit of {MAX_OUTPUT_CHARS}")


def _check_format(spec: Any) -> None:
    if isinstance(spec, str) and _WIDE_SPEC.search(spec):
        raise SecurityError("format width or precision is over the limit")


def _bounded_range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_RANGE:
        raise OverflowError(f"range of {len(items)} items is over the limit of {MAX_RANGE}")
    return items


def _width_checked(name: str, func: Callable[..., Any], width_index: int) -> Callable[..., Any]:
    """Wrap a padding filter so its width argument (positional or keyword) is bounded."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > width_index:
            _check_width(args[width_index])
        _check_width(kwargs.get("width"))
        return func(*args, **kwargs)

    bounded.__name__ = name
    return bounded


class _BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox plus bounds on what it leaves unbounded: repetition, powers, padding, format widths.

    Intercepting ``*``, ``**`` and ``%`` also stops Jinja from constant-folding them at compile time, so
    ``{{ 'a' * 10**9 }}`` cannot exhaust memory while a flow is being compiled either.
    """

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            autoescape=False,
            undefined=ChainableUndefined,
            finalize=_finalize,
            keep_trailing_newline=True,
        )
        del self.globals["lipsum"]  # lorem ipsum of any length: no use in chat text
        self.globals["range"] = _bounded_range
        self.filters["center"] = _width_checked("center", self.filters["center"], 1)
        self.filters["indent"] = _width_checked("indent", self.filters["indent"], 1)
        format_filter = self.filters["format"]

        def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_format(value)
            return format_filter(value, *args, **kwargs)

        self.filters["format"] = bounded_format

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    _check_width(len(seq) * count)
        elif operator_ == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
        elif operator_ == "%":
            _check_format(left)
        return super().call_binop(context, operator_, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(obj, "__self__", None), str) and obj.__name__ in _PADDING_METHODS:
            for arg in (*args, *kwargs.values()):
                _check_width(arg)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # the sandbox wraps str.format when it is looked up, before any call
            _check_format(value.__self__)
        return wrapped


def _loop_depth(node: nodes.Node) -> int:
    """The deepest nesting of for-loops under ``node``."""
    depth = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return depth + 1 if isinstance(node, nodes.For) else depth


class CompiledTemplate:
    """One template text, compiled; ``render`` never raises and never returns more than the bound."""

    __slots__ = ("_fallback", "_render", "source")

    def __init__(
        self, source: str, render: Callable[[Mapping[str, Any]], Iterator[str]] | None, fallback: str
    ):
        self.source = source
        self._render = render
        self._fallback = fallback

    def render(self, namespace: Mapping[str, Any]) -> str:
        if self._render is None:
            return self._fallback
        parts: list[str] = []
        size = 0
        try:
            # Streamed, so a loop that would produce megabytes stops as soon as the bound is reached.
            for part in self._render(namespace):
                parts.append(part)
                size += len(part)
                if size > MAX_OUTPUT_CHARS:
                    logger.warning(
                        "template output cut to %d characters: %.80r", MAX_OUTPUT_CHARS, self.source
                    )
                    break
        except Exception as exc:  # a template must never fail the turn: see the module docstring
            logger.warning(
                "template failed (%s: %s), rendering its literal text: %.80r",
                type(exc).__name__,
                exc,
                self.source,
            )
            return self._fallback
        return "".join(parts)[:MAX_OUTPUT_CHARS]


class TemplateEngine:
    """Compiles templates for one flow version; each distinct text is compiled once and shared."""

    def __init__(self) -> None:
        self._env = _BoundedSandbox()
        self._cache: dict[str, CompiledTemplate] = {}

    def compile(self, text: str) -> CompiledTemplate:
        """The compiled template of ``text``; a ``TemplateCompileError`` when it does not compile."""
        cached = self._cache.get(text)
        if cached is None:
            cached = self._cache[text] = self._compile(text)
        return cached

    def _compile(self, text: str) -> CompiledTemplate:
        if not any(marker in text for marker in ("{{", "{%", "{#")):
            return CompiledTemplate(text, None, text[:MAX_OUTPUT_CHARS])
        try:
            ast = self._env.parse(text)
            if _loop_depth(ast) > MAX_LOOP_DEPTH:
                raise TemplateCompileError(f"for-loops are nested deeper than {MAX_LOOP_DEPTH}", None)
            template = self._env.from_string(ast)
            literal = "".join(value for _, kind, value in self._env.lex(text) if kind == "data")
        except TemplateSyntaxError as exc:
            raise TemplateCompileError(f"template does not parse: {exc.message}", exc.lineno) from exc
        return CompiledTemplate(text, template.generate, literal[:MAX_OUTPUT_CHARS])

"""Message templates: Jinja2 in a sandbox, compiled once per flow version, rendered without failing a turn.

Templates are chat text written by flow designers (``"Your balance is {{ variables.balance }}"``), rendered
over the turn's namespace (``slots``, ``variables``, ``user_profile``, ``intent``, ``event``,
``integration_results``, ``context``). Hence:

- no autoescaping (this is not HTML), a missing name or key renders as nothing and so does ``None``
  (``{{ slots.size }}`` before the slot is filled; ``{{ user_profile.address.city }}`` with no address);
- the sandbox (``mcp_engine.runtime.sandbox``) refuses Python internals (``''.__class__`` renders as
  nothing) and bounds what could exhaust the engine: the size of every value a template builds, integers,
  ``range()``, padding and format widths, loop nesting, the output (``MAX_OUTPUT_CHARS``), and the time a
  render takes (``MAX_RENDER_MS``, within the turn's own budget);
- rendering never raises: a template that fails at run time (``{{ slots.count + 1 }}`` with no count, a bound
  hit) is a template error: it logs a warning, tells the caller (the turn records a ``template_error``
  event) and renders its literal text with every ``{{ }}``/``{% %}`` part left empty, which reads better in
  a chat than half a sentence or raw template syntax. Only the turn running out of time stops the turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError

from mcp_engine.runtime import turnscope
from mcp_engine.runtime.sandbox import (
    MAX_LOOP_DEPTH,
    MAX_OUTPUT_CHARS,
    BoundedSandbox,
    bound_loops,
    loop_depth,
)

logger = logging.getLogger(__name__)

MAX_RENDER_MS = 100  # one render, at most (chat text renders in microseconds)


class TemplateCompileError(ValueError):
    """A template that cannot be compiled (syntax, or too deeply nested loops), with its line."""

    def __init__(self, message: str, lineno: int | None) -> None:
        super().__init__(message if lineno is None else f"{message} (line {lineno})")
        self.lineno = lineno


class CompiledTemplate:
    """One template text, compiled; ``render`` never raises and never returns more than the bound."""

    __slots__ = ("_fallback", "_render", "source")

    def __init__(
        self, source: str, render: Callable[[Mapping[str, Any]], Iterator[str]] | None, fallback: str
    ):
        self.source = source
        self._render = render
        self._fallback = fallback

    def render(self, namespace: Mapping[str, Any], errors: list[str] | None = None) -> str:
        """The text; a failure renders the literal text and, with ``errors``, is appended to it."""
        if self._render is None:
            return self._fallback
        parts: list[str] = []
        size = 0
        try:
            with turnscope.at_most(MAX_RENDER_MS / 1000):
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
            if isinstance(exc, turnscope.TurnOverrun):
                turnscope.check()  # the turn itself is out of time: that stops the turn
                exc = TimeoutError(f"rendering took longer than {MAX_RENDER_MS} ms")
            message = f"{type(exc).__name__}: {exc}"
            logger.warning("template failed (%s), rendering its literal text: %.80r", message, self.source)
            if errors is not None:
                errors.append(message)
            return self._fallback
        return "".join(parts)[:MAX_OUTPUT_CHARS]


class TemplateEngine:
    """Compiles templates for one flow version; each distinct text is compiled once and shared."""

    def __init__(self) -> None:
        self._env = BoundedSandbox()
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
            if loop_depth(ast) > MAX_LOOP_DEPTH:
                raise TemplateCompileError(f"for-loops are nested deeper than {MAX_LOOP_DEPTH}", None)
            template = self._env.from_string(bound_loops(ast))
            literal = "".join(value for _, kind, value in self._env.lex(text) if kind == "data")
        except TemplateSyntaxError as exc:
            raise TemplateCompileError(f"template does not parse: {exc.message}", exc.lineno) from exc
        return CompiledTemplate(text, template.generate, literal[:MAX_OUTPUT_CHARS])

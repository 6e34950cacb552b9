"""Templates: sandboxed Jinja2 compiled once per text, rendering that never fails a turn and stays bounded."""

import logging
import time
from typing import Any

import pytest

from mcp_engine.runtime.templates import MAX_OUTPUT_CHARS, TemplateCompileError, TemplateEngine

NAMESPACE: dict[str, Any] = {
    "slots": {"size": "large", "count": 2},
    "variables": {"balance": 12.5, "nothing": None, "items": ["a", "b"]},
    "user_profile": {"name": "Ada"},
    "intent": {"name": "order", "confidence": 0.9},
    "event": {"type": "message", "text": "hi"},
    "integration_results": {"bank": {"balance": 3}},
    "context": {"channel": "web"},
}


@pytest.fixture
def engine() -> TemplateEngine:
    return TemplateEngine()


def render(engine: TemplateEngine, text: str) -> str:
    return engine.compile(text).render(NAMESPACE)


def test_renders_the_flow_namespace(engine: TemplateEngine) -> None:
    text = (
        "{{ user_profile.name }}: {{ slots.count }} {{ slots.size }} pizzas, "
        "{{ '%.2f' % variables.balance }} ({{ intent.name }}, {{ integration_results.bank.balance }}, "
        "{{ context.channel }}, {{ event.text }})"
    )
    assert render(engine, text) == "Ada: 2 large pizzas, 12.50 (order, 3, web, hi)"


def test_missing_names_keys_and_none_render_as_nothing(engine: TemplateEngine) -> None:
    text = "[{{ slots.missing }}|{{ nobody }}|{{ user_profile.address.city }}|{{ variables.nothing }}]"
    assert render(engine, text) == "[|||]"


def test_no_html_escaping_and_text_kept_verbatim(engine: TemplateEngine) -> None:
    assert engine.compile("{{ x }}").render({"x": "<b>Tom & Jerry</b>"}) == "<b>Tom & Jerry</b>"
    assert render(engine, "Plain text, trailing newline\n") == "Plain text, trailing newline\n"


def test_each_text_is_compiled_once(engine: TemplateEngine) -> None:
    assert engine.compile("Hi {{ slots.size }}") is engine.compile("Hi {{ slots.size }}")
    assert TemplateEngine().compile("Hi {{ slots.size }}") is not engine.compile("Hi {{ slots.size }}")


def test_syntax_error_fails_at_compile_time(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateCompileError, match=r"does not parse.*\(line 2\)"):
        engine.compile("Hi\n{{ slots.size ")


def test_runtime_error_renders_the_literal_text_and_warns(
    engine: TemplateEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    text = "Total: {{ slots.missing + 1 }} euros{# note #}, {% if slots.size %}thanks{% endif %}!"
    assert render(engine, text) == "Total:  euros, thanks!"
    assert "template failed (UndefinedError" in caplog.text


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ slots.__class__.__init__.__globals__ }}",
        "{{ ''.format.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_python_internals_are_out_of_reach(engine: TemplateEngine, attack: str) -> None:
    output = render(engine, "<" + attack + ">")
    assert output == "<>"


@pytest.mark.parametrize(
    "attack",
    [
        "{% for x in range(10**9) %}{{ x }}{% endfor %}",
        "{% for x in range(100000) %}{% endfor %}",
        "{{ 'a' * 10**9 }}",
        "{{ [0] * 1000000000 }}",
        "{{ 2 ** 1000000000 }}",
        "{{ 'x'.center(1000000000) }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ 'x'|indent(1000000000, true) }}",
        "{{ '%1000000000s' % 'x' }}",
        "{{ '%*s' % (1000000000, 'x') }}",
        "{{ '{:>1000000000}'.format('x') }}",
        "{{ '{:>{w}}'.format('x', w=1000000000) }}",
        "{{ '%1000000000s'|format('x') }}",
    ],
)
def test_resource_exhaustion_is_refused(engine: TemplateEngine, attack: str) -> None:
    assert render(engine, "before " + attack + " after") == "before  after"


def test_output_is_bounded(engine: TemplateEngine) -> None:
    text = "{% for x in range(1000) %}{% for y in range(1000) %}0123456789{% endfor %}{% endfor %}"
    assert len(render(engine, text)) == MAX_OUTPUT_CHARS
    assert len(engine.compile("x" * (MAX_OUTPUT_CHARS + 5)).render({})) == MAX_OUTPUT_CHARS


def test_deeply_nested_loops_fail_at_compile_time(engine: TemplateEngine) -> None:
    loops = "{% for a in range(9) %}{% for b in a %}{% for c in b %}{% endfor %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateCompileError, match="nested deeper than 2"):
        engine.compile(loops)


def test_ordinary_formatting_still_works(engine: TemplateEngine) -> None:
    text = "{{ '{:,}'.format(1234567) }} {{ '%5.1f%%' % 12.34 }} {{ 2 ** 10 }} {{ '-' * 3 }}"
    text += "{{ 'ok'|center(6) }}"
    assert render(engine, text) == "1,234,567  12.3% 1024 ---  ok  "
    assert render(engine, "{% for i in variables['items'] %}{{ loop.index }}{{ i }} {% endfor %}") == "1a 2b "


GROWING = "{% set ns = namespace(s='ab', l=[1], x=3, d={}) %}"


@pytest.mark.parametrize(
    ("attack", "why"),
    [
        ("{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "characters"),
        ("{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "characters"),
        ("{% for i in range(40) %}{% set ns.s = ns.s|replace('a', 'aa') %}{% endfor %}", "replace"),
        ("{% for i in range(40) %}{% set ns.s = ns.s.replace('a', 'aaaa') %}{% endfor %}", "replace"),
        ("{% for i in range(40) %}{{ ns.l.extend(ns.l) }}{% endfor %}", "items"),
        ("{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "characters"),
        ("{{ range(1000)|join('x' * 9000) }}", "join"),
        ("{{ ('x' * 9000).join(range(1000)) }}", "join"),
        ("{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}{% endfor %}", "bits"),
        ("{% for i in range(40) %}{% set ns.x = ns.x ** 2 %}{% endfor %}", "bits"),
        ("{% for i in range(200) %}{{ ns.d.update({i: 'x' * 9000}) }}{% endfor %}", "items"),
        ("{{ 'a'|indent('x' * 1000) }}", "indent"),
    ],
)
def test_growing_intermediate_values_is_a_template_error(
    engine: TemplateEngine, attack: str, why: str
) -> None:
    """Issue 17: what a template builds is bounded, not only what it prints; the failure is reported."""
    errors: list[str] = []
    assert (
        engine.compile("before " + GROWING + attack + " after").render(NAMESPACE, errors) == "before  after"
    )
    assert len(errors) == 1
    assert why in errors[0]


def test_a_loop_over_long_user_text_is_cut_by_the_render_time_bound(engine: TemplateEngine) -> None:
    errors: list[str] = []
    text = "{% for a in event.text %}{% for b in event.text %}{% endfor %}{% endfor %}done"
    assert engine.compile(text).render({"event": {"text": "x" * 50_000}}, errors) == "done"
    assert errors == ["TimeoutError: rendering took longer than 100 ms"]


def test_values_within_the_bounds_are_built(engine: TemplateEngine) -> None:
    text = (
        GROWING + "{% for i in range(10) %}{% set ns.s = ns.s ~ ns.s %}{% set ns.x = ns.x * 3 %}{% endfor %}"
    )
    errors: list[str] = []
    assert engine.compile(text + "{{ ns.s|length }} {{ ns.x }}").render(NAMESPACE, errors) == f"2048 {3**11}"
    assert errors == []


def test_a_render_past_the_turns_deadline_stops_the_turn(engine: TemplateEngine) -> None:
    """Inside a turn whose time is up, a template does not fall back: the turn itself stops."""
    from mcp_engine.runtime.turnscope import TurnOverrun, turn_budget

    with turn_budget(time.monotonic() - 1), pytest.raises(TurnOverrun):
        render(engine, "{% for i in range(3) %}{{ i }}{% endfor %}")

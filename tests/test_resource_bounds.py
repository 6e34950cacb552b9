"""Issue 17's in-process bounds: the compiled-flow cache by bytes, the turn's loop budget, flow limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mcp_engine.flow.limits import FlowLimits
from mcp_engine.flow.validate import validate_data
from mcp_engine.runtime.turnscope import TurnOverrun, at_most, check, turn_budget
from tests.turnkit import end, flow, open_engine, talk


async def test_the_compiled_flow_cache_is_bounded_by_bytes_least_recently_used_first(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "engine.db", MCP_COMPILED_FLOW_CACHE_MB=1)
    try:
        big = "x" * 20_000  # each compiled flow is estimated at well over half a megabyte
        for name in ("one", "two", "three"):
            document = flow("done", {"done": end(big)}, flow_id=name)
            await engine.catalogue.publish_document(document, make_default=name == "one")
        catalogue = engine.catalogue
        for name in ("one", "two", "three"):
            await catalogue.published("t1", name)
        assert catalogue.cached_bytes <= 1024 * 1024
        assert [key[1] for key in catalogue._flows] == ["three"]  # the most recently used one
        assert await talk(engine, "c", "hi")  # an evicted flow is compiled again when a turn needs it
    finally:
        await engine.close()


def test_the_loop_budget_raises_only_past_the_deadline() -> None:
    check()  # outside a turn: never
    with turn_budget(time.monotonic() + 60):
        check()
        with at_most(-1), pytest.raises(TurnOverrun):
            check()  # a narrower budget inside
        check()  # and the turn's own again once it is left
    with turn_budget(time.monotonic() - 1), pytest.raises(TurnOverrun):
        check()


def test_states_over_the_limit_are_refused_before_anything_else_is_checked() -> None:
    document = flow("s0", {f"s{i}": end("x") for i in range(11)})
    document["states"]["s0"]["transitions"] = [{"condition": "nonsense"}] * 3
    result = validate_data(document, limits=FlowLimits(max_states=10))
    assert [(p.pointer, p.code) for p in result.problems] == [("/states", "too-many-states")]
    assert "MCP_MAX_STATES" in result.problems[0].message
    result = validate_data(document, limits=FlowLimits(max_transitions=2))
    assert [(p.pointer, p.code) for p in result.problems] == [
        ("/states/s0/transitions", "too-many-transitions")
    ]


async def test_the_engines_settings_decide_the_flow_limits(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path / "engine.db", MCP_MAX_TRANSITIONS=1)
    try:
        document = flow("a", {"a": end("x"), "b": end("y")})
        document["states"]["a"] = {
            "type": "condition",
            "config": {},
            "transitions": [
                {"condition": "expression", "expression": "true", "target_state": "b", "priority": n}
                for n in (1, 2)
            ],
        }
        result = await engine.catalogue.validate("t1", document)
        assert [p.code for p in result.problems] == ["too-many-transitions"]
    finally:
        await engine.close()


async def test_a_turn_over_the_context_limit_writes_nothing_but_an_error_event(tmp_path: Path) -> None:
    from mcp_engine.errors import ContextTooLarge
    from tests.turnkit import msg, on, wait

    engine = await open_engine(tmp_path / "engine.db", MCP_MAX_CONTEXT_BYTES=20_000)
    try:
        keep = [{"type": "set_variable", "name": f"v{i}", "expression": "event.text"} for i in range(10)]
        document = flow(
            "w", {"w": wait(on("any_input", "w", actions=keep))}, settings={"max_message_chars": 5_000}
        )
        await engine.catalogue.publish_document(document, make_default=True)
        await talk(engine, "c", "small")
        before = await engine.store.load("t1", "c")
        history = await engine.store.history("t1", "c", limit=100)
        with pytest.raises(ContextTooLarge):
            await engine.process_message("t1", "c", msg("x" * 4_000))
        after = await engine.store.load("t1", "c")
        assert before is not None
        assert after is not None
        assert (after.version, after.context) == (before.version, before.context)
        assert await engine.store.history("t1", "c", limit=100) == history
        [event] = await engine.store.events("t1", "error")
        assert event["data"]["kind"] == "context_too_large"
    finally:
        await engine.close()

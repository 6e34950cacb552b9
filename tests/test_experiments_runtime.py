"""Experiments in the turn: what a variant runs (a pinned version, a merge-patched flow compiled once at
start, variables), sticky allocation recorded on the run and kept to its end, ``ENABLE_AB_TESTING``, and
a start or stop in one engine seen at once by another engine on the same store."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_engine.metrics import Metrics
from mcp_engine.runtime import catalogue
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import EXAMPLE_SECRETS, TENANT, engine_settings, example_flow, open_engine
from tests.experiment_kit import (
    GREETING,
    SHORT_GREETING,
    document,
    pizza_version,
    say,
    variant,
)

USERS = [f"user-{n}" for n in range(40)]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    async with open_engine(tmp_path / "engine.db") as engine:
        yield engine


async def first_turns(
    engine: ExecutionService, users: list[str], prefix: str = "c"
) -> dict[str, dict[str, Any]]:
    return {user: await say(engine, f"{prefix}-{user}", "hello", user) for user in users}


async def test_a_pinned_version_runs_while_the_control_runs_the_published_one(
    engine: ExecutionService,
) -> None:
    await engine.catalogue.create(TENANT, pizza_version("1.1.0", "Version one-one here."))
    pinned = document("pinned", "pizza", variant("control", 50), variant("next", 50, flow_version="1.1.0"))
    await engine.experiments.create(TENANT, pinned, start=True)
    replies = await first_turns(engine, USERS)
    seen = Counter(reply["ab_variant"] for reply in replies.values())
    assert set(seen) == {"control", "next"}
    for reply in replies.values():
        expected = (
            ("1.0.0", GREETING) if reply["ab_variant"] == "control" else ("1.1.0", "Version one-one here.")
        )
        assert reply["flow_version"] == expected[0]
        assert reply["messages"][0]["text"].startswith(expected[1])


async def test_a_merge_patch_variant_answers_with_the_patched_template_compiled_once_at_start(
    engine: ExecutionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    real = catalogue.compile_flow

    def counting(flow: Any, *args: Any) -> Any:
        compiled.append(flow.version)
        return real(flow, *args)

    monkeypatch.setattr(catalogue, "compile_flow", counting)
    record, _, _ = await engine.experiments.create(TENANT, document(), start=True)
    assert record.bases == {"short": "1.0.0"}
    assert compiled == ["1.0.0+short-greeting.short"]  # compiled by the start, not by a turn
    replies = await first_turns(engine, USERS)
    short = [r for r in replies.values() if r["ab_variant"] == "short"]
    control = [r for r in replies.values() if r["ab_variant"] == "control"]
    assert short
    assert control
    assert all(r["messages"][0]["text"] == SHORT_GREETING for r in short)
    assert all(r["flow_version"] == "1.0.0+short-greeting.short" for r in short)
    assert all(r["messages"][0]["text"].startswith(GREETING) for r in control)
    for reply in short[:3]:  # the run goes on on the patched flow
        later = await say(engine, reply["conversation_id"], "two large pizzas please")
        assert later["flow_version"] == "1.0.0+short-greeting.short"
    assert compiled == ["1.0.0+short-greeting.short"]  # and no turn compiled anything


async def test_a_variant_sets_variables_at_the_start_of_each_run(engine: ExecutionService) -> None:
    styled = document(
        "styled",
        "pizza",
        variant("control", 50),
        variant("styled", 50, variables={"style": {"tone": "brief"}}),
    )
    await engine.experiments.create(TENANT, styled, start=True)
    replies = await first_turns(engine, USERS)
    for user, reply in replies.items():
        variables = (await engine.get_state(TENANT, f"c-{user}"))["variables"]
        assert (variables.get("style") == {"tone": "brief"}) == (reply["ab_variant"] == "styled")


async def test_the_variant_is_recorded_on_the_run_and_in_every_event(engine: ExecutionService) -> None:
    await engine.experiments.create(TENANT, document(), start=True)
    reply = await say(engine, "c1", "hello", "user-1")
    await say(engine, "c1", "cancel")
    context = await engine.get_state(TENANT, "c1")
    assert context["run"]["experiment_id"] == "short-greeting"
    assert context["run"]["variant"] == reply["ab_variant"]
    history = list(reversed(await engine.store.history(TENANT, "c1", limit=100)))
    assert history[0]["type"] == "experiment_exposure"
    assert history[0]["data"] == {
        "experiment_id": "short-greeting",
        "variant": reply["ab_variant"],
        "allocated_by": "user",
        "flow_version": reply["flow_version"] if reply["ab_variant"] == "short" else None,
    }
    assert all(e["experiment_id"] == "short-greeting" for e in history)
    assert {e["variant"] for e in history} == {reply["ab_variant"]}
    completed = [e for e in history if e["type"] == "run_completed"]
    assert completed[0]["data"]["turns"] == 2


async def test_allocation_is_sticky_by_user_across_conversations_and_runs(engine: ExecutionService) -> None:
    await engine.experiments.create(TENANT, document(), start=True)
    for user in USERS[:10]:
        first = await say(engine, f"a-{user}", "hello", user)
        other = await say(engine, f"b-{user}", "hello", user)
        await say(engine, f"a-{user}", "cancel")  # the run ends ...
        again = await say(engine, f"a-{user}", "hello")  # ... and the next one is allocated afresh
        assert first["ab_variant"] == other["ab_variant"] == again["ab_variant"] != ""


async def test_without_a_user_id_the_conversation_id_decides(engine: ExecutionService) -> None:
    await engine.experiments.create(TENANT, document(), start=True)
    variants = Counter()
    for n in range(30):
        reply = await say(engine, f"anon-{n}", "hello")
        again = await say(engine, f"anon-{n}", "cancel")
        assert again["ab_variant"] == reply["ab_variant"]
        variants[reply["ab_variant"]] += 1
        exposure = (await engine.store.history(TENANT, f"anon-{n}", limit=100))[-1]
        assert exposure["data"]["allocated_by"] == "conversation"
    assert set(variants) == {"control", "short"}


async def test_a_run_keeps_its_variant_when_the_experiment_stops(engine: ExecutionService) -> None:
    await engine.experiments.create(TENANT, document(), start=True)
    user = next(
        u for u, r in (await first_turns(engine, USERS, "probe")).items() if r["ab_variant"] == "short"
    )
    started = await say(engine, "c1", "hello", user)
    assert started["ab_variant"] == "short"
    await engine.experiments.stop(TENANT, "short-greeting")
    during = await say(engine, "c1", "two large pizzas")
    assert (during["ab_variant"], during["flow_version"]) == ("short", "1.0.0+short-greeting.short")
    ended = await say(engine, "c1", "cancel")
    assert ended["ab_variant"] == "short"
    after = await say(engine, "c1", "hello")  # a new run: no experiment runs any more
    assert (after["ab_variant"], after["flow_version"]) == ("", "1.0.0")
    assert after["messages"][0]["text"].startswith(GREETING)


async def test_enable_ab_testing_false_turns_allocation_off(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    async with (
        open_engine(path) as on,
        open_engine(path, settings=engine_settings(enable_ab_testing=False), publish=False) as off,
    ):
        await off.experiments.create(TENANT, document(), start=True)  # managing experiments still works
        allocated = await say(on, "c-on", "hello", "user-1")
        assert allocated["ab_variant"] != ""
        assert (await say(off, "c-off", "hello", "user-1"))["ab_variant"] == ""
        kept = await say(off, "c-on", "two large pizzas")  # allocated before: keeps its variant
        assert kept["ab_variant"] == allocated["ab_variant"]
        results = await off.experiments.results(TENANT, "short-greeting")
        assert any("ENABLE_AB_TESTING=false" in note for note in results.notes)


async def test_a_start_and_a_stop_in_one_engine_are_seen_at_once_by_another(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    async with open_engine(path) as one, open_engine(path, publish=False) as two:
        assert (await say(two, "before", "hello", "user-1"))["ab_variant"] == ""
        await one.experiments.create(TENANT, document(), start=True)
        replies = await first_turns(two, USERS, "during")  # the other engine compiles the patch itself
        assert {r["ab_variant"] for r in replies.values()} == {"control", "short"}
        assert all(
            r["messages"][0]["text"] == SHORT_GREETING for r in replies.values() if r["ab_variant"] == "short"
        )
        await one.experiments.stop(TENANT, "short-greeting")
        assert (await say(two, "after", "hello", "user-1"))["ab_variant"] == ""


async def test_a_new_experiment_on_the_flow_replaces_the_cached_one(engine: ExecutionService) -> None:
    await engine.experiments.create(TENANT, document(), start=True)
    assert (await say(engine, "c1", "hello", "user-1"))["ab_variant"] in {"control", "short"}
    await engine.experiments.stop(TENANT, "short-greeting")
    await engine.experiments.create(
        TENANT, document("second", "pizza", variant("a", 0), variant("b", 100)), start=True
    )
    assert (await say(engine, "c2", "hello", "user-1"))["ab_variant"] == "b"


OUTER: dict[str, Any] = {
    "flow_id": "outer",
    "tenant_id": TENANT,
    "name": "Outer",
    "version": "1.0.0",
    "initial_state": "ask",
    "intents": {"go": {"patterns": ["^go$"]}},
    "states": {
        "ask": {
            "type": "intent",
            "config": {"intent_patterns": ["go"]},
            "transitions": [
                {
                    "condition": "intent_match",
                    "condition_value": "go",
                    "target_state": "back",
                    "actions": [{"type": "trigger_flow", "flow_id": "inner", "return_state": "back"}],
                }
            ],
        },
        "back": {
            "type": "response",
            "config": {"response_templates": {"default": "Back in outer."}},
            "transitions": [{"condition": "expression", "expression": "true", "target_state": "ask"}],
        },
    },
}
INNER: dict[str, Any] = {
    "flow_id": "inner",
    "tenant_id": TENANT,
    "name": "Inner",
    "version": "1.0.0",
    "initial_state": "done",
    "states": {"done": {"type": "end", "config": {"response_templates": {"default": "Inner done."}}}},
}


async def test_a_sub_flow_returns_to_the_patched_parent(engine: ExecutionService) -> None:
    for flow in (OUTER, INNER):
        await engine.catalogue.publish_document(flow)
    patch = {
        "states": {"back": {"config": {"response_templates": {"default": "Back in the patched outer."}}}}
    }
    outer = document("outer-test", "outer", variant("control", 0), variant("patched", 100, merge_patch=patch))
    await engine.experiments.create(TENANT, outer, start=True)
    await say(engine, "o1", "hello", "user-1", flow="outer")
    reply = await say(engine, "o1", "go", flow="outer")
    assert [m["text"] for m in reply["messages"]] == ["Inner done.", "Back in the patched outer."]
    assert (reply["flow_id"], reply["flow_version"]) == ("outer", "1.0.0+outer-test.patched")
    assert reply["ab_variant"] == "patched"


async def test_metrics_count_runs_and_completions_by_experiment_and_variant(tmp_path: Path) -> None:
    metrics = Metrics()
    engine = ExecutionService(
        SQLiteStore(str(tmp_path / "engine.db")),
        settings=engine_settings(grant_secrets=EXAMPLE_SECRETS),
        metrics=metrics,
    )
    await engine.start()
    try:
        for name in ("pizza", "bank"):
            await engine.catalogue.publish_document(example_flow(name))
        await engine.experiments.create(TENANT, document(), start=True)
        variants = Counter()
        for user in USERS[:20]:
            variants[(await say(engine, f"m-{user}", "hello", user))["ab_variant"]] += 1
            await say(engine, f"m-{user}", "cancel")
        await say(engine, "plain", "hello", flow="bank")  # outside experiments: counted nowhere here
        rendered = metrics.render().decode()
        for name, count in variants.items():
            labels = f'experiment="short-greeting",variant="{name}"'
            assert f"mcp_experiment_conversations_total{{{labels}}} {count:.1f}" in rendered
            assert f"mcp_experiment_completions_total{{{labels}}} {count:.1f}" in rendered
        assert rendered.count("mcp_experiment_conversations_total{") == len(variants)
    finally:
        await engine.close()

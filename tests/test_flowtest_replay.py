"""Replay: histories cut into turns, recorded conversations replayed against a candidate version (the
same version must replay identically), from the SQLite file, from PostgreSQL + Redis and from an export."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from mcp_engine.cli import main
from mcp_engine.config import EngineSettings
from mcp_engine.flowtest.history import read_history, turns_of
from mcp_engine.flowtest.replay import ReplayReport, render_text
from mcp_engine.flowtest.sources import candidate_file, export, replay_from
from mcp_engine.registry import default_registry
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.runtime.services import EngineServices
from mcp_engine.runtime.timers import fire_due_timers
from mcp_engine.store.base import Store, TurnWrite
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore
from tests.engine_fixtures import (
    EXAMPLE_FLOWS,
    FLOWS_DIR,
    TENANT,
    Conversation,
    engine_settings,
    example_flow,
)
from tests.production_kit import POSTGRES_URI, REDIS_URL, fresh_backing

ENV = {"BANK_API_TOKEN": "t", "HELPDESK_API_KEY": "k"}
FAKES = [
    {
        "integration": "core_banking",
        "endpoint": "/accounts/12345678/balance",
        "body": {"data": {"balance": 7, "as_of": "today"}},
    },
    {"integration": "helpdesk", "body": {"ticket": {"id": "T-9"}}},
]


def ev(kind: str, run: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "run": run, "state": data.pop("state", "s"), "flow_id": "f", "data": data}


def test_turns_are_cut_at_each_input_with_a_new_runs_entry_before_it() -> None:
    events = [
        ev("state_entered", "r1", state="greet"),
        ev("message_out", "r1", text="Hello"),  # turn 1's run entry, before its input
        ev("message_in", "r1", text="hi"),
        ev("message_out", "r1", text="Bye", state="end"),
        ev("run_completed", "r1", state="end"),  # turn 1 ends the run
        ev("state_entered", "r2", state="greet"),  # turn 2 starts a new run: its entry comes first
        ev("message_out", "r2", text="Hello"),
        ev("message_in", "r2", text="again"),
        ev("state_entered", "r2", state="wait"),
        ev("event_in", "r2", event="timeout", text=""),  # a timer's turn
        ev("message_out", "r2", text="Still there?", state="wait"),
        ev("timer_fired", "r2", state="wait"),
        ev("event_in", "r2", event="ping", text="ping"),  # a client's event
    ]
    turns = turns_of(events)
    assert [t.input.describe() for t in turns] == ['user: "hi"', 'user: "again"', "timeout", "event: ping"]
    assert [[m["text"] for m in t.messages] for t in turns] == [
        ["Hello", "Bye"],
        ["Hello"],
        ["Still there?"],
        [],
    ]
    assert [t.state for t in turns] == ["end", "wait", "wait", "s"]


async def test_a_timer_turn_records_its_input_first(recorded: Path) -> None:
    store = SQLiteStore(str(recorded))
    await store.open()
    try:
        types = [e["type"] for e in await read_history(store, TENANT, "support-1")]
    finally:
        await store.close()
    timer_turn = types[types.index("event_in") : types.index("timer_fired") + 1]
    assert timer_turn[:2] == ["event_in", "transition"]
    assert "message_in" not in timer_turn


async def test_read_history_pages_through_the_store_oldest_first(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    await store.open()
    try:
        events = [
            {"type": "message_in", "n": n, "tenant_id": "t", "conversation_id": "c"} for n in range(1203)
        ]
        await store.commit(TurnWrite("t", "c", None, {"x": 1}, events))
        read = await read_history(store, "t", "c")
        assert [e["n"] for e in read] == list(range(1203))
        assert len(await read_history(store, "t", "c", limit=700)) == 700
        assert await read_history(store, "other", "c") == []
    finally:
        await store.close()


# --- recording real conversations --------------------------------------------------------------------


@pytest.fixture
async def backend() -> AsyncIterator[str]:
    """The bank and the helpdesk on 127.0.0.1: account 12345678 answers, any other is down (503)."""

    async def balance(request: web.Request) -> web.Response:
        if request.match_info["account"] != "12345678":
            return web.json_response({}, status=503)
        return web.json_response({"data": {"balance": 7, "as_of": "today"}})

    async def ticket(request: web.Request) -> web.Response:
        return web.json_response({"ticket": {"id": "T-9"}}, status=201)

    app = web.Application()
    app.router.add_get("/api/v1/accounts/{account}/balance", balance)
    app.router.add_post("/helpdesk/tickets", ticket)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def documents(base: str) -> list[dict[str, Any]]:
    flows = {name: example_flow(name) for name in EXAMPLE_FLOWS}
    flows["bank"]["integrations"]["core_banking"]["base_url"] = f"{base}/api/v1"
    flows["support"]["integrations"]["helpdesk"]["base_url"] = f"{base}/helpdesk"
    return list(flows.values())


SCRIPTS: dict[str, tuple[str, list[str]]] = {
    "pizza-1": ("pizza", ["two large pizzas", "12 Main Street", "2127365000", "yes", "hi again"]),
    "pizza-2": ("pizza", ["I'd like to order", "help", "medium", "five", "cancel"]),
    "bank-1": ("bank", ["my balance", "12345678", "no"]),
    "bank-2": ("bank", ["my balance", "55555503"]),
    "support-1": ("support", ["my internet is down", "<timeout>", "no", "Jane", "jane@example.com", "yes"]),
}


async def record(engine: ExecutionService) -> None:
    for conversation_id, (flow_id, lines) in SCRIPTS.items():
        chat = Conversation(engine, conversation_id, flow_id)
        for line in lines:
            if line == "<timeout>":
                await fire_due_timers(engine, now=time.time() + 3600)
            else:
                await chat.say(line)


async def record_on(store: Store, backend: str) -> None:
    """The example flows published on ``store`` and the scripted conversations recorded there."""
    settings = engine_settings(grant_secrets="*:" + ",".join(ENV))
    engine = ExecutionService(store, settings=settings, services=EngineServices(env=ENV))
    await engine.start()
    try:
        for document in documents(backend):
            await engine.catalogue.publish_document(document)
        await record(engine)
    finally:
        await engine.close()


@pytest.fixture
async def recorded(tmp_path: Path, backend: str) -> Path:
    """A SQLite store with the example conversations recorded against the real backend."""
    path = tmp_path / "recorded.db"
    await record_on(SQLiteStore(str(path)), backend)
    return path


async def replay_file(source: str, candidate: Path, ids: list[str], **kwargs: Any) -> ReplayReport:
    from mcp_engine.flowtest.spec import Fake

    fakes = [Fake.model_validate(f) for f in FAKES]
    return await replay_from(
        source, str(candidate), TENANT, ids, fakes, "default", default_registry(), engine_settings(**kwargs)
    )


@pytest.mark.parametrize("flow_id", ["pizza", "bank", "support"])
async def test_the_recorded_version_replays_identically(recorded: Path, flow_id: str) -> None:
    ids = [cid for cid, (flow, _) in SCRIPTS.items() if flow == flow_id]
    report = await replay_file(str(recorded), FLOWS_DIR / f"{flow_id}.json", ids)
    assert [(r.conversation_id, r.outcome, r.unanswered_calls) for r in report.conversations] == [
        (cid, "same", []) for cid in ids
    ]
    assert report.summary.same == len(ids)
    assert sum(r.turns for r in report.conversations) == sum(len(SCRIPTS[cid][1]) for cid in ids)


def changed_pizza(tmp_path: Path) -> Path:
    """pizza 1.1.0: free delivery from 25 USD, and "medium" pizzas cost the same as large ones."""
    folder = tmp_path / "candidate"
    folder.mkdir()
    document = copy.deepcopy(example_flow("pizza"))
    document["version"] = "1.1.0"
    states = document["states"]
    states["price_check"]["transitions"][0]["expression"] = "variables.price > 25"
    states["free_delivery"]["config"]["response_templates"]["default"] = "Free delivery from 25 USD!"
    path = folder / "pizza.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


async def test_a_changed_version_shows_the_first_differing_turn(recorded: Path, tmp_path: Path) -> None:
    report = await replay_file(
        str(recorded), changed_pizza(tmp_path), ["pizza-1", "pizza-2", "bank-1", "nope"]
    )
    assert (report.flow_id, report.version) == ("pizza", "1.1.0")
    one, two, bank, unknown = report.conversations
    outcomes = (one.outcome, two.outcome, bank.outcome, unknown.outcome)
    assert outcomes == ("differs", "differs", "skipped", "skipped")
    assert two.first_difference is not None
    assert (two.first_difference.turn, two.first_difference.sends) == (4, 'user: "five"')
    difference = one.first_difference
    assert difference is not None
    assert (difference.turn, difference.sends, difference.fields) == (
        1,
        'user: "two large pizzas"',
        ["messages"],
    )
    assert difference.recorded.state == difference.replayed.state == "delivery_details"
    assert [m["text"] for m in difference.replayed.messages][1] == "Free delivery from 25 USD!"
    assert one.further_differences == 1  # the confirmation's total (30 + 0, not 30 + 4)
    assert bank.note == "recorded on flow 'bank', not 'pizza'"
    assert unknown.note == "no history (an unknown conversation, or another tenant's)"
    text = render_text(report)
    assert 'pizza-1: differs from turn 1 of 5 (user: "two large pizzas")' in text
    assert "    and 1 more turn differ" in text


async def test_a_recorded_success_without_a_fake_is_reported_unanswered(recorded: Path) -> None:
    report = await replay_from(
        str(recorded),
        str(FLOWS_DIR / "bank.json"),
        TENANT,
        ["bank-1", "bank-2"],
        [],
        "default",
        default_registry(),
        engine_settings(),
    )
    one, two = report.conversations
    assert one.outcome == "differs"
    assert one.unanswered_calls == [
        "core_banking GET /accounts/12345678/balance {'channel': 'default', 'currency': 'EUR'}"
    ]
    assert two.outcome == "same"  # the recorded 503 is answered again from the recording


def test_cli_replay_export_and_exit_codes(recorded: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    fakes = tmp_path / "fakes.yaml"
    fakes.write_text(json.dumps(FAKES), encoding="utf-8")
    exported = tmp_path / "conversations.json"
    result = runner.invoke(
        main,
        ["export", "pizza-1", "bank-1", "--tenant", TENANT, "--from", str(recorded), "-o", str(exported)],
    )
    assert result.exit_code == 0, result.output
    pages = json.loads(exported.read_text())["conversations"]
    assert [p["conversation_id"] for p in pages] == ["pizza-1", "bank-1"]
    assert pages[0]["events"][0]["seq"] > pages[0]["events"][-1]["seq"]  # newest first, like GET .../history
    same = [
        "replay",
        "--from",
        str(exported),
        "--against",
        str(FLOWS_DIR / "bank.json"),
        "--fakes",
        str(fakes),
    ]
    result = runner.invoke(main, same)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "pizza-1: skipped: recorded on flow 'pizza', not 'bank'",
        "bank-1: the same (3 turns)",
    ]
    differs = [
        "replay",
        "--from",
        str(exported),
        "--against",
        str(changed_pizza(tmp_path)),
        "--format",
        "json",
    ]
    result = runner.invoke(main, differs)
    assert result.exit_code == 1
    assert json.loads(result.output)["summary"] == {"conversations": 2, "same": 0, "differs": 1, "skipped": 1}
    stored = [
        "replay",
        "--from",
        str(recorded),
        "--tenant",
        TENANT,
        "-c",
        "pizza-2",
        "--against",
        "pizza@1.0.0",
    ]
    result = runner.invoke(main, stored)
    assert (result.exit_code, result.output.splitlines()[-1]) == (0, "pizza-2: the same (5 turns)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "missing.db", "--tenant", "demo", "-c", "x", "--against", "pizza@1.0.0"],
            "no such store file: missing.db",
        ),
        (
            ["--from", "{recorded}", "--against", "pizza@1.0.0"],
            "reading from a store needs --tenant and at least one --conversation",
        ),
        (
            ["--from", "{recorded}", "--tenant", "demo", "-c", "x", "--against", "pizza"],
            "give a flow file or FLOW_ID@VERSION",
        ),
        (
            ["--from", "{recorded}", "--tenant", "demo", "-c", "x", "--against", "pizza@9.9.9"],
            "flow 'pizza' version 9.9.9 not found",
        ),
        (
            ["--from", "{bad}", "--against", "pizza@1.0.0", "--fakes", "{fakes}"],
            "fakes.yaml:2: error: /0/status: Input should be greater than or equal to 100",
        ),
        (["--from", "{bad}", "--against", "pizza@1.0.0"], "item 0 is not a history page"),
    ],
)
def test_cli_replay_bad_input_exits_2(recorded: Path, tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"events": []}]')
    fakes = tmp_path / "fakes.yaml"
    fakes.write_text("- integration: core_banking\n  status: 99\n")
    args = [a.format(recorded=recorded, bad=bad, fakes=fakes) for a in args]
    result = CliRunner().invoke(main, ["replay", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_configured_store_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POSTGRES_URI", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MCP_SQLITE_PATH", str(tmp_path / "none.db"))
    result = CliRunner().invoke(
        main, ["replay", "--from", "store", "--tenant", TENANT, "-c", "x", "--against", "a@1.0.0"]
    )
    assert result.exit_code == 2
    assert f"no store at {tmp_path / 'none.db'}" in result.output
    assert not (tmp_path / "none.db").exists()


def test_export_of_an_unknown_conversation_is_an_error(recorded: Path) -> None:
    result = CliRunner().invoke(main, ["export", "nope", "--tenant", TENANT, "--from", str(recorded)])
    assert result.exit_code == 1
    assert "tenant 'demo' has no history for nope" in result.output


async def test_replay_from_postgres_and_redis_through_the_configured_store(
    backend: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with fresh_backing("replay") as name:
        await record_on(ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name), backend)
        for key, value in {
            "POSTGRES_URI": POSTGRES_URI,
            "REDIS_URL": REDIS_URL,
            "MCP_POSTGRES_SCHEMA": name,
            "MCP_REDIS_PREFIX": name,
        }.items():
            monkeypatch.setenv(key, value)
        report = await replay_from(
            "store",
            "support@2.0.1",
            TENANT,
            ["support-1"],
            [],
            "default",
            default_registry(),
            EngineSettings(),
        )
        (one,) = report.conversations
        assert (one.outcome, one.turns, one.unanswered_calls) == (
            "differs",
            6,
            [
                "helpdesk POST /tickets {'contact_email': 'jane@example.com', 'contact_name': 'Jane', "
                "'conversation_id': 'support-1', 'summary': 'my internet is down'}"
            ],
        )
        exported = await export("store", TENANT, ["support-1"], EngineSettings())
        assert [page["conversation_id"] for page in exported["conversations"]] == ["support-1"]


def test_a_candidate_file_brings_its_folders_sub_flows() -> None:
    flows = candidate_file(FLOWS_DIR / "support.json", default_registry())
    assert flows.flow_id == "support"
    assert sorted(doc["flow_id"] for doc in flows.others) == ["bank", "collect_contact", "pizza"]

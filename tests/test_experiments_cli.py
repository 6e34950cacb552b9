"""``mcp-engine experiments``: the experiment endpoints from a shell, on a temporary SQLite file, seen by
an engine serving the same file; and a second engine process allocates every user as the first did."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mcp_engine.cli import main
from tests.engine_fixtures import TENANT, open_engine
from tests.experiment_kit import document, say, variant

ENV = {"POSTGRES_URI": None, "REDIS_URL": None, "MCP_SQLITE_PATH": None}


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["experiments", *args, "--tenant", TENANT, "--db", str(db)], env=ENV)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "engine.db"

    async def publish() -> None:
        async with open_engine(path):
            pass

    asyncio.run(publish())
    return path


def write(tmp_path: Path, body: object, name: str = "experiment.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_create_start_results_stop(db: Path, tmp_path: Path) -> None:
    created = run(db, "create", str(write(tmp_path, document())))
    assert created.exit_code == 0, created.output
    assert "short-greeting  pizza  draft" in created.output
    assert "running" in run(db, "start", "short-greeting").output

    async def talk() -> list[str]:
        async with open_engine(db, publish=False) as engine:  # an engine serving the same file
            return [(await say(engine, f"c{n}", "hello", f"u{n}"))["ab_variant"] for n in range(10)]

    assert set(asyncio.run(talk())) == {"control", "short"}
    shown = json.loads(run(db, "results", "short-greeting", "--json").output)
    assert sum(v["conversations"] for v in shown["variants"]) == 10
    table = run(db, "results", "short-greeting").output
    assert table.splitlines()[0] == "short-greeting on flow pizza: running"
    assert "RATE (95% CI)" in table
    listed = json.loads(run(db, "list", "--json").output)
    assert [(e["experiment_id"], e["status"], e["bases"]) for e in listed] == [
        ("short-greeting", "running", {"short": "1.0.0"})
    ]
    assert "stopped" in run(db, "stop", "short-greeting").output
    assert "stopped" in run(db, "show", "short-greeting").output


def test_a_bad_document_lists_every_problem_and_exits_1(db: Path, tmp_path: Path) -> None:
    bad = document("bad", "pizza", variant("a", 50), variant("a", 20, flow_version="9.9.9"))
    result = run(db, "create", str(write(tmp_path, bad)))
    assert result.exit_code == 1
    assert "/variants: the variants' percentages sum to 70, not 100" in result.output
    assert "/variants/1/name" in result.output
    assert "/variants/1/modifications/flow_version" in result.output


def test_unknown_experiments_and_unreadable_files_are_clear_errors(db: Path, tmp_path: Path) -> None:
    missing = run(db, "start", "nope")
    assert (missing.exit_code, "experiment 'nope' not found" in missing.output) == (1, True)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert run(db, "create", str(broken)).exit_code == 1
    nowhere = CliRunner().invoke(
        main,
        ["experiments", "list", "--tenant", TENANT],
        env={**ENV, "MCP_SQLITE_PATH": str(tmp_path / "none.db")},
    )
    assert nowhere.exit_code == 1
    assert "no store at" in nowhere.output


SECOND_PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from tests.engine_fixtures import open_engine
    from tests.experiment_kit import say

    async def main():
        async with open_engine(Path(sys.argv[1]), publish=False) as engine:
            replies = [await say(engine, f"p2-{n}", "hello", f"user-{n}") for n in range(60)]
            print(json.dumps([reply["ab_variant"] for reply in replies]))

    asyncio.run(main())
    """
)


def test_a_second_engine_process_allocates_every_user_as_the_first(db: Path) -> None:
    async def first() -> list[str]:
        async with open_engine(db, publish=False) as engine:
            await engine.experiments.create(TENANT, document(), start=True)
            return [(await say(engine, f"p1-{n}", "hello", f"user-{n}"))["ab_variant"] for n in range(60)]

    mine = asyncio.run(first())
    root = Path(__file__).parent.parent
    other = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=True,
    )
    assert json.loads(other.stdout) == mine
    assert set(mine) == {"control", "short"}

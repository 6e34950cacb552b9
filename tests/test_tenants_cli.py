"""``mcp-engine tenants``: create tenants, print keys once, revoke and list them, on a temporary file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mcp_engine.auth import KEY_PREFIX, Authenticator
from mcp_engine.cli import main
from mcp_engine.errors import Unauthenticated
from mcp_engine.store.sqlite import SQLiteStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "engine.db"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["tenants", *args], env={"POSTGRES_URI": None, **(env or {})})


def tenant_of(db: Path, key: str) -> str:
    """What a running engine would make of the key (a fresh Authenticator: no cache)."""

    async def check() -> str:
        store = SQLiteStore(str(db))
        await store.open()
        try:
            return await Authenticator(store, "on", None).tenant(f"Bearer {key}", None)
        finally:
            await store.close()

    return asyncio.run(check())


def test_create_prints_a_working_key_once_alone_on_stdout(db: Path) -> None:
    result = run("create", "acme", "--db", str(db))
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith(KEY_PREFIX)
    assert "\n" not in key
    assert "shown only now" in result.stderr
    assert tenant_of(db, key) == "acme"
    with sqlite3.connect(db) as conn:
        assert key not in "\n".join(conn.iterdump())


def test_key_adds_a_key_and_list_shows_ids_never_secrets(db: Path) -> None:
    first = run("create", "acme", "--db", str(db)).stdout.strip()
    second = run("key", "acme", "--db", str(db)).stdout.strip()
    assert first != second
    assert tenant_of(db, second) == "acme"
    listed = run("list", "acme", "--db", str(db))
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["TENANT", "KEY_ID", "CREATED", "STATE"]
    assert [line.split()[1] for line in lines[1:]] == [first.split("_")[1], second.split("_")[1]]
    assert all(line.endswith("live") for line in lines[1:])
    assert first not in listed.output
    assert second not in listed.output


def test_revoke_stops_the_key(db: Path) -> None:
    key = run("create", "acme", "--db", str(db)).stdout.strip()
    key_id = key.split("_")[1]
    result = run("revoke", "acme", key_id, "--db", str(db))
    assert result.exit_code == 0
    assert f"revoked key {key_id}" in result.stdout
    with pytest.raises(Unauthenticated):
        tenant_of(db, key)
    assert "revoked" in run("list", "acme", "--db", str(db)).stdout.splitlines()[1]
    again = run("revoke", "acme", key_id, "--db", str(db))
    assert again.exit_code == 1
    assert "no live key" in again.stderr


def test_revoke_with_another_tenants_name_does_nothing(db: Path) -> None:
    key = run("create", "acme", "--db", str(db)).stdout.strip()
    run("create", "other", "--db", str(db))
    result = run("revoke", "other", key.split("_")[1], "--db", str(db))
    assert result.exit_code == 1
    assert tenant_of(db, key) == "acme"


def test_list_without_a_tenant_lists_every_tenant(db: Path) -> None:
    run("create", "acme", "--db", str(db))
    run("create", "bravo", "--db", str(db))
    lines = run("list", "--db", str(db)).stdout.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["acme", "bravo"]


def test_the_store_comes_from_mcp_sqlite_path(db: Path) -> None:
    key = run("create", "acme", env={"MCP_SQLITE_PATH": str(db)}).stdout.strip()
    assert tenant_of(db, key) == "acme"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "Not Valid"), "bad tenant id"),
        (("create", "acme"), "already exists"),
        (("key", "nope"), "no tenant 'nope'"),
        (("revoke", "nope", "k1"), "no tenant 'nope'"),
        (("list", "nope"), "no tenant 'nope'"),
    ],
)
def test_clear_errors(db: Path, args: tuple[str, ...], message: str) -> None:
    run("create", "acme", "--db", str(db))
    result = run(*args, "--db", str(db))
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_store_file_is_not_created_by_mistake(tmp_path: Path) -> None:
    result = run("list", "--db", str(tmp_path / "typo.db"))
    assert result.exit_code == 1
    assert "no store at" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_with_postgres_configured_it_needs_an_explicit_db() -> None:
    result = run("list", env={"POSTGRES_URI": "postgresql://db/mcp"})
    assert result.exit_code == 1
    assert "--db" in result.stderr

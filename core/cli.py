"""The ``mcp-engine`` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from mcp_engine.experiments.cli import experiments
from mcp_engine.flow.validate import ValidationResult, validate_file
from mcp_engine.new_plugin import KINDS
from mcp_engine.registry import default_registry

if TYPE_CHECKING:
    from mcp_engine.auth import Authenticator
    from mcp_engine.security.grants import Grants
    from mcp_engine.store.base import ApiKey

_T = TypeVar("_T")


@click.group()
@click.version_option(package_name="mcp-engine")
def main() -> None:
    """MCP Engine: conversation flows compiled once, run per turn."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def validate(files: tuple[Path, ...], fmt: str) -> None:
    """Check flow documents; report every error and warning; exit 1 if any has an error."""
    registry = default_registry()
    results = [validate_file(path, registry) for path in files]
    if fmt == "json":
        click.echo(json.dumps([_as_json(r) for r in results], indent=2))
    else:
        for result in results:
            for problem in result.problems:
                click.echo(problem.render(result.source))
            verdict = "ok" if result.ok else "invalid"
            click.echo(
                f"{result.source}: {verdict} ({len(result.errors)} errors, {len(result.warnings)} warnings)"
            )
    sys.exit(1 if any(not r.ok for r in results) else 0)


def _as_json(result: ValidationResult) -> dict[str, object]:
    return {"file": result.source, "valid": result.ok, "problems": [p.to_dict() for p in result.problems]}


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write here instead of standard output."
)
def graph(file: Path, fmt: str, output: Path | None) -> None:
    """Draw a flow's states and transitions as Mermaid, Graphviz DOT or SVG."""
    from mcp_engine.flow import graph as draw

    registry = default_registry()
    result = validate_file(file, registry)
    if result.flow is None:
        for problem in result.problems:
            click.echo(problem.render(result.source), err=True)
        sys.exit(1)
    render = {"mermaid": draw.to_mermaid, "dot": draw.to_dot, "svg": draw.to_svg}[fmt]
    try:
        text = render(result.flow, registry)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text)


@main.command()
@click.option("--test-file", is_flag=True, help="The schema of flow test files (*.test.yaml) instead.")
def schema(test_file: bool) -> None:
    """Print the flow document's JSON Schema (generated from the installed plugins)."""
    from mcp_engine.flow.schema import flow_schema
    from mcp_engine.flowtest.spec import file_schema

    click.echo(json.dumps(file_schema() if test_file else flow_schema(default_registry()), indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of tables.")
def plugins(as_json: bool) -> None:
    """List every plugin kind, name and providing distribution, then the installed plugins that were
    skipped and why (a broken or clashing one); honours MCP_ENGINE_LOAD_PLUGINS."""
    registry = default_registry()
    rows = registry.describe()
    if as_json:
        skipped = [entry.to_dict() for entry in registry.skipped]
        click.echo(json.dumps({"plugins": rows, "skipped": skipped}, indent=2))
        return
    _table(
        [("KIND", "NAME", "PROVIDER")]
        + [(row["kind"], row["name"], f"{row['provider']} {row['version']}") for row in rows]
    )
    if registry.skipped:
        click.echo()
        _table(
            [("SKIPPED", "PROVIDER", "REASON")]
            + [
                (s.provider.plugin, f"{s.provider.distribution} {s.provider.version}", s.reason)
                for s in registry.skipped
            ]
        )


def _table(rows: list[tuple[str, str, str]]) -> None:
    """Left-aligned columns; the last one is not padded."""
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for first, second, last in rows:
        click.echo(f"{first:<{widths[0]}}  {second:<{widths[1]}}  {last}")


@main.command()
@click.argument("flow", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--debug", is_flag=True, help="Show state, slots, intent and changes after each turn.")
@click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path), help="Keep conversations in this file."
)
@click.option("--channel", default="default", show_default=True, help="The channel templates are chosen by.")
def chat(flow: Path, debug: bool, db: Path | None, channel: str) -> None:
    """Talk to a flow in the terminal; reads lines from stdin, so it can be scripted."""
    import asyncio

    from mcp_engine.chat import chat as run_chat

    sys.exit(asyncio.run(run_chat(flow, db, debug, channel)))


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def test_flows(paths: tuple[Path, ...], fmt: str) -> None:
    """Run flow test files (*.test.yaml beside the flows; a folder: every one under it), each case on a
    throwaway engine; print a line per case and the transition coverage; exit 1 if any case failed."""
    import asyncio

    from mcp_engine.config import EngineSettings
    from mcp_engine.flowtest.report import render_text
    from mcp_engine.flowtest.suite import run_paths

    report = asyncio.run(run_paths(list(paths), default_registry(), EngineSettings()))
    click.echo(report.model_dump_json(indent=2) if fmt == "json" else render_text(report))
    sys.exit(0 if report.ok else 1)


_FROM_HELP = (
    "An export (.json: `mcp-engine export`, or GET /v2/conversations/{id}/history pages), a SQLite "
    "store file, or 'store': the engine's store (PostgreSQL + Redis with POSTGRES_URI/REDIS_URL, else "
    "MCP_SQLITE_PATH)."
)


@main.command()
@click.option("--from", "source", required=True, help=_FROM_HELP)
@click.option(
    "--against",
    "candidate",
    required=True,
    help="The candidate: a flow file (the flows of its folder are its sub-flows) or FLOW_ID@VERSION, stored.",
)
@click.option("--tenant", help="The conversations' tenant (needed with a store, or a stored candidate).")
@click.option("-c", "--conversation", "conversations", multiple=True, help="A conversation id (repeatable).")
@click.option(
    "--fakes",
    "fakes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Integration answers: a YAML/JSON list of fakes, or a flow test file (its fakes).",
)
@click.option("--channel", default="default", show_default=True, help="The channel the messages come on.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def replay(
    source: str,
    candidate: str,
    tenant: str | None,
    conversations: tuple[str, ...],
    fakes_file: Path | None,
    channel: str,
    fmt: str,
) -> None:
    """Replay recorded conversations' messages against a candidate flow version and show, per
    conversation, the first turn whose state or messages differ. Exit 0: all the same; 1: some differ."""
    import asyncio

    from mcp_engine.config import EngineSettings
    from mcp_engine.errors import EngineError
    from mcp_engine.flowtest.replay import render_text
    from mcp_engine.flowtest.sources import read_fakes, replay_from

    try:
        fakes = read_fakes(fakes_file) if fakes_file else []
        report = asyncio.run(
            replay_from(
                source,
                candidate,
                tenant,
                list(conversations),
                fakes,
                channel,
                default_registry(),
                EngineSettings(),
            )
        )
    except EngineError as exc:
        raise _Trouble(exc.message) from exc
    click.echo(report.model_dump_json(indent=2) if fmt == "json" else render_text(report))
    sys.exit(1 if report.summary.differs else 0)


class _Trouble(click.ClickException):
    """Like ``diff``: 1 says the inputs differ, so trouble (bad input) is 2."""

    exit_code = 2


@main.command()
@click.argument("conversation_ids", nargs=-1, required=True)
@click.option("--tenant", required=True, help="The conversations' tenant.")
@click.option(
    "--from",
    "source",
    default="store",
    show_default=True,
    help="'store' (PostgreSQL + Redis with POSTGRES_URI/REDIS_URL, else MCP_SQLITE_PATH) or a SQLite file.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout."
)
def export(conversation_ids: tuple[str, ...], tenant: str, source: str, output: Path | None) -> None:
    """Export whole conversation histories as JSON (the history endpoint's format), e.g. for replay."""
    import asyncio

    from mcp_engine.config import EngineSettings
    from mcp_engine.errors import EngineError
    from mcp_engine.flowtest.sources import export as export_histories

    try:
        data = asyncio.run(export_histories(source, tenant, list(conversation_ids), EngineSettings()))
    except EngineError as exc:
        raise click.ClickException(exc.message) from exc
    text = json.dumps(data, indent=2)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


main.add_command(experiments)


@main.command("new-plugin")
@click.argument("name")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Include an example of this plugin kind (repeat it; default: every kind).",
)
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the project's folder, mcp-engine-NAME.",
)
def new_plugin(name: str, kinds: tuple[str, ...], parent: Path) -> None:
    """Create a plugin distribution NAME: an example of each plugin kind, a flow using them, its tests."""
    from mcp_engine.new_plugin import render_plugin

    try:
        target = render_plugin(name, parent, kinds or KINDS)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {target}; next, in the engine's environment:")
    click.echo(f"  cd {target} && pip install -e '.[test]' && pytest")


_DB = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite file to manage (default: MCP_SQLITE_PATH).",
)


@main.group()
def tenants() -> None:
    """Create tenants and manage their API keys, directly in the engine's store (no server needed).

    A key is printed once, alone on standard output (so `KEY=$(mcp-engine tenants key acme)` works);
    the store keeps only its hash, so a lost key cannot be shown again: make a new one, revoke the old.
    """


@tenants.command("create")
@click.argument("tenant_id")
@_DB
def tenants_create(tenant_id: str, db: Path | None) -> None:
    """Create TENANT_ID and print its first API key."""

    async def create(auth: Authenticator) -> tuple[str, str]:
        await auth.create_tenant(tenant_id)
        return await auth.create_key(tenant_id)

    key_id, key = _administer(db, create, new_file_ok=True)
    click.echo(f"created tenant '{tenant_id}' with key {key_id}; it is shown only now:", err=True)
    click.echo(key)


@tenants.command("key")
@click.argument("tenant_id")
@_DB
def tenants_key(tenant_id: str, db: Path | None) -> None:
    """Print a new API key for TENANT_ID (its other keys stay valid)."""
    key_id, key = _administer(db, lambda auth: auth.create_key(tenant_id))
    click.echo(f"new key {key_id} for tenant '{tenant_id}'; it is shown only now:", err=True)
    click.echo(key)


@tenants.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id")
@_DB
def tenants_revoke(tenant_id: str, key_id: str, db: Path | None) -> None:
    """Revoke TENANT_ID's key KEY_ID (a running engine refuses it within seconds)."""

    async def revoke(auth: Authenticator) -> bool:
        await auth.list_keys(tenant_id)  # an unknown tenant: a clear error, not "no such key"
        return await auth.revoke_key(tenant_id, key_id)

    if not _administer(db, revoke):
        raise click.ClickException(f"tenant '{tenant_id}' has no live key '{key_id}'")
    click.echo(f"revoked key {key_id} of tenant '{tenant_id}'")


@tenants.command("list")
@click.argument("tenant_id", required=False)
@_DB
def tenants_list(tenant_id: str | None, db: Path | None) -> None:
    """List the keys (ids and states, never secrets) of TENANT_ID, or of every tenant."""

    async def keys(auth: Authenticator) -> list[tuple[str, list[ApiKey]]]:
        ids = [tenant_id] if tenant_id else [t.tenant_id for t in await auth.store.list_tenants()]
        return [(one, await auth.list_keys(one)) for one in ids]

    rows = [("TENANT", "KEY_ID", "CREATED", "STATE")]
    for one, listed in _administer(db, keys):
        found = [(one, k.key_id, _when(k.created_at), _state(k)) for k in listed]
        rows += found or [(one, "-", "-", "no keys")]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for *cells, state in rows:
        click.echo("".join(f"{cell:<{width}}  " for cell, width in zip(cells, widths, strict=True)) + state)


_GRANT_OPTIONS = (
    click.option(
        "--secret", "secrets", multiple=True, help="A secret name its flows may use as ${env:NAME}."
    ),
    click.option("--outbound", multiple=True, help="An address, network or address:port its flows may call."),
)


def _grant_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_GRANT_OPTIONS):
        command = option(command)
    return command


@tenants.command("grant")
@click.argument("tenant_id")
@_grant_options
@click.option("--max-body-bytes", type=click.IntRange(min=1), help="Its REST bodies' limit (413 past it).")
@click.option("--max-message-bytes", type=click.IntRange(min=1), help="Its messages' text limit (413).")
@_DB
def tenants_grant(
    tenant_id: str,
    secrets: tuple[str, ...],
    outbound: tuple[str, ...],
    max_body_bytes: int | None,
    max_message_bytes: int | None,
    db: Path | None,
) -> None:
    """Grant TENANT_ID secrets, outbound addresses or size limits (running engines see it within seconds).

    The engine's own configuration (MCP_ADMIN_KEY, POSTGRES_URI, REDIS_URL, MCP_*) is never granted."""
    from mcp_engine.security.grants import Grants

    added = Grants(secrets, outbound, max_body_bytes, max_message_bytes)
    grants = _change_grants(db, tenant_id, lambda current: added.adding(current))
    click.echo(f"tenant '{tenant_id}': {_describe(grants)}")


@tenants.command("ungrant")
@click.argument("tenant_id")
@_grant_options
@click.option("--limits", is_flag=True, help="Back to the operator's default size limits.")
@_DB
def tenants_ungrant(
    tenant_id: str, secrets: tuple[str, ...], outbound: tuple[str, ...], limits: bool, db: Path | None
) -> None:
    """Take back what TENANT_ID was granted (running engines see it within seconds)."""
    from mcp_engine.security.grants import Grants

    def without(current: Grants) -> Grants:
        kept = Grants(
            tuple(name for name in current.secrets if name not in secrets),
            tuple(item for item in current.outbound if item not in outbound),
        )
        return kept if limits else replace(current, secrets=kept.secrets, outbound=kept.outbound)

    click.echo(f"tenant '{tenant_id}': {_describe(_change_grants(db, tenant_id, without))}")


def _change_grants(db: Path | None, tenant_id: str, change: Callable[[Grants], Grants]) -> Grants:
    from mcp_engine.security.grants import check_grants

    async def run(auth: Authenticator) -> Grants:
        tenant = await auth.store.get_tenant(tenant_id)
        if tenant is None:
            raise click.ClickException(f"no tenant '{tenant_id}': create it with `mcp-engine tenants create`")
        grants = change(tenant.grants)
        try:
            check_grants(grants)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        await auth.store.put_tenant(replace(tenant, grants=grants))
        return grants

    return _administer(db, run)


def _describe(grants: Grants) -> str:
    body, message = grants.max_body_bytes or "default", grants.max_message_bytes or "default"
    secrets, outbound = ", ".join(grants.secrets) or "none", ", ".join(grants.outbound) or "none"
    return f"secrets {secrets}; outbound {outbound}; max body {body}, max message {message} bytes"


def _administer(
    db: Path | None, action: Callable[[Authenticator], Awaitable[_T]], new_file_ok: bool = False
) -> _T:
    """Run ``action`` with an Authenticator on the configured SQLite store; engine errors exit 1 cleanly."""
    import asyncio

    from mcp_engine.auth import Authenticator
    from mcp_engine.config import EngineSettings
    from mcp_engine.errors import EngineError
    from mcp_engine.store.sqlite import SQLiteStore

    settings = EngineSettings()
    if db is None and settings.postgres_uri:
        raise click.ClickException("POSTGRES_URI is set; `tenants` manages an SQLite store only: pass --db")
    path = db or Path(settings.sqlite_path)
    if not new_file_ok and not path.exists():
        raise click.ClickException(f"no store at {path} (set MCP_SQLITE_PATH or pass --db)")

    async def run() -> _T:
        store = SQLiteStore(str(path))
        await store.open()
        try:
            return await action(Authenticator(store, "on", None))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except EngineError as exc:
        raise click.ClickException(exc.message) from exc


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _state(key: ApiKey) -> str:
    return "live" if key.revoked_at is None else f"revoked {_when(key.revoked_at)}"


@main.command()
@click.option(
    "--flows",
    "flows_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Publish every flow document (*.json, *.yaml, *.yml) of this folder at start.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address both servers listen on.")
@click.option(
    "--default-flow",
    envvar="MCP_DEFAULT_FLOW",
    help="The flow (by id) that becomes its tenant's default; else a tenant's first flow of --flows.",
)
@click.option(
    "--workers",
    envvar="MCP_WORKERS",
    default="1",
    show_default=True,
    help="Engine processes sharing both ports (SO_REUSEPORT), each on its own loop; 'auto': one per core.",
)
def serve(flows_dir: Path | None, host: str, default_flow: str | None, workers: str) -> None:
    """Serve REST (HTTP_PORT) and gRPC (GRPC_PORT) until SIGTERM/SIGINT; MCP_LOG_FORMAT=json for JSON logs."""
    import os

    from mcp_engine.config import EngineSettings
    from mcp_engine.errors import EngineError
    from mcp_engine.logs import configure_logging
    from mcp_engine.serve import run as run_server
    from mcp_engine.serve import serve as served
    from mcp_engine.workers import Supervisor, worker_count

    try:
        count = worker_count(workers)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--workers") from exc
    log_format = os.environ.get("MCP_LOG_FORMAT")
    try:
        settings = EngineSettings()
        configure_logging(log_format, service=settings.service_name)
        if count == 1:
            sys.exit(run_server(settings, served(settings, host, flows_dir, default_flow)))
        sys.exit(Supervisor(settings, host, count, flows_dir, default_flow, log_format).run())
    except EngineError as exc:
        raise click.ClickException(exc.message) from exc

"""``mcp-engine experiments``: the REST experiment endpoints from a shell, straight on the engine's store.

It opens the store the engine's settings name (``POSTGRES_URI`` + ``REDIS_URL``, else the SQLite file of
``MCP_SQLITE_PATH`` or ``--db``), so it needs no running server; engines serving that store see a start
or stop at their next new run. Output is a table, or ``--json`` for the REST API's own bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mcp_engine.experiments.results import ExperimentResults
from mcp_engine.store.base import ExperimentRecord

if TYPE_CHECKING:  # the engine itself is imported when a command runs, not when the CLI starts
    from mcp_engine.runtime.execution import ExecutionService

_T = TypeVar("_T")
_TENANT = click.option("--tenant", "tenant_id", required=True, help="The tenant whose experiments these are.")
_DB = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite file (default: MCP_SQLITE_PATH).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group()
def experiments() -> None:
    """Create, start, stop and read A/B experiments (docs/experiments.md)."""


def _run(db: Path | None, action: Callable[[ExecutionService], Awaitable[_T]]) -> _T:
    from mcp_engine.config import EngineSettings
    from mcp_engine.errors import EngineError, ExperimentValidationError
    from mcp_engine.runtime.execution import ExecutionService
    from mcp_engine.store.factory import open_store

    settings = EngineSettings()
    if db is not None:
        settings = settings.model_copy(
            update={"sqlite_path": str(db), "postgres_uri": None, "redis_url": None}
        )
    elif not settings.postgres_uri and not Path(settings.sqlite_path).exists():
        raise click.ClickException(f"no store at {settings.sqlite_path} (set MCP_SQLITE_PATH or pass --db)")

    async def run() -> _T:
        engine = ExecutionService(open_store(settings), settings=settings)
        await engine.start()
        try:
            return await action(engine)
        finally:
            await engine.close()

    try:
        return asyncio.run(run())
    except ExperimentValidationError as exc:
        for problem in exc.problems:
            click.echo(problem.render(), err=True)
        raise click.ClickException(exc.message) from exc
    except EngineError as exc:
        raise click.ClickException(exc.message) from exc


def _summary(record: ExperimentRecord) -> dict[str, Any]:
    document = record.document
    return {
        "experiment_id": record.experiment_id,
        "flow_id": record.flow_id,
        "status": record.status,
        "control": document.get("control"),
        "variants": {v["name"]: v["percentage"] for v in document["variants"]},
        "bases": record.bases,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
    }


def _show(records: list[ExperimentRecord], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_summary(r) for r in records], indent=2))
        return
    rows = [("EXPERIMENT", "FLOW", "STATUS", "VARIANTS")]
    rows += [
        (
            r.experiment_id,
            r.flow_id,
            r.status,
            ", ".join(f"{n} {p:g}%" for n, p in _summary(r)["variants"].items()),
        )
        for r in records
    ]
    _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for *cells, last in rows:
        click.echo("".join(f"{cell:<{width}}  " for cell, width in zip(cells, widths, strict=True)) + last)


@experiments.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--start", is_flag=True, help="Start it at once.")
@_TENANT
@_DB
@_JSON
def create(file: Path, start: bool, tenant_id: str, db: Path | None, as_json: bool) -> None:
    """Check the experiment document FILE (JSON or YAML) and store it; every problem at once, exit 1."""
    from mcp_engine.flow.loader import read_file

    source, problem = read_file(file)
    if source is None:
        raise click.ClickException(problem.render(str(file)) if problem else f"cannot read {file}")
    record, warnings, _ = _run(db, lambda engine: engine.experiments.create(tenant_id, source.data, start))
    for warning in warnings:
        click.echo(warning.render(str(file)), err=True)
    _show([record], as_json)


@experiments.command("list")
@_TENANT
@_DB
@_JSON
def list_(tenant_id: str, db: Path | None, as_json: bool) -> None:
    """List the tenant's experiments, oldest first."""
    _show(_run(db, lambda engine: engine.experiments.of_tenant(tenant_id)), as_json)


def _one(
    name: str, act: Callable[[ExecutionService, str, str], Awaitable[ExperimentRecord]], about: str
) -> None:
    @experiments.command(name, help=about)
    @click.argument("experiment_id")
    @_TENANT
    @_DB
    @_JSON
    def command(experiment_id: str, tenant_id: str, db: Path | None, as_json: bool) -> None:
        _show([_run(db, lambda engine: act(engine, tenant_id, experiment_id))], as_json)


_one("show", lambda engine, tenant, eid: engine.experiments.get(tenant, eid), "Show EXPERIMENT_ID.")
_one("start", lambda engine, tenant, eid: engine.experiments.start(tenant, eid), "Start EXPERIMENT_ID.")
_one(
    "stop",
    lambda engine, tenant, eid: engine.experiments.stop(tenant, eid),
    "Stop EXPERIMENT_ID (runs in a variant keep it to their end).",
)


@experiments.command("results")
@click.argument("experiment_id")
@_TENANT
@_DB
@_JSON
def results(experiment_id: str, tenant_id: str, db: Path | None, as_json: bool) -> None:
    """Per variant: runs, completions, completion rate with its 95 % interval, mean turns to completion,
    no-match rate, and the difference to the control with its p-value."""
    found: ExperimentResults = _run(db, lambda engine: engine.experiments.results(tenant_id, experiment_id))
    if as_json:
        click.echo(found.model_dump_json(indent=2))
        return
    rows = [("VARIANT", "RUNS", "DONE", "RATE (95% CI)", "TURNS", "NO-MATCH", "VS CONTROL")]
    for v in found.variants:
        rate = "-" if v.completion_rate is None else f"{v.completion_rate:.1%}"
        interval = f"{rate} ({v.completion_rate_interval.low:.1%}-{v.completion_rate_interval.high:.1%})"
        turns = "-" if v.mean_turns_to_completion is None else f"{v.mean_turns_to_completion:.2f}"
        misses = "-" if v.no_match_rate is None else f"{v.no_match_rate:.1%}"
        versus = "control" if v.control else "-"
        if v.vs_control is not None:
            mark = " significant" if v.vs_control.significant else ""
            versus = f"{v.vs_control.difference:+.1%} p={v.vs_control.p_value:.3g}{mark}"
        rows.append((v.name, str(v.conversations), str(v.completions), interval, turns, misses, versus))
    click.echo(f"{found.experiment_id} on flow {found.flow_id}: {found.status}")
    _table(rows)
    for note in found.notes:
        click.echo(f"note: {note}", err=True)

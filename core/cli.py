"""The ``mcp-engine`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mcp_engine.flow.validate import ValidationResult, validate_file
from mcp_engine.plugin_manager import default_registry


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

    result = validate_file(file, default_registry())
    if result.flow is None:
        for problem in result.problems:
            click.echo(problem.render(result.source), err=True)
        sys.exit(1)
    render = {"mermaid": draw.to_mermaid, "dot": draw.to_dot, "svg": draw.to_svg}[fmt]
    try:
        text = render(result.flow)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text)


@main.command()
def schema() -> None:
    """Print the flow document's JSON Schema (generated from the installed plugins)."""
    from mcp_engine.flow.schema import flow_schema

    click.echo(json.dumps(flow_schema(default_registry()), indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects instead of a table.")
def plugins(as_json: bool) -> None:
    """List every plugin kind, name and providing distribution (honours MCP_ENGINE_LOAD_PLUGINS)."""
    rows = default_registry().describe()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("KIND", "NAME", "PROVIDER")] + [
        (row["kind"], row["name"], f"{row['provider']} {row['version']}") for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(2)]
    for kind, name, provider in table:
        click.echo(f"{kind:<{widths[0]}}  {name:<{widths[1]}}  {provider}")


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

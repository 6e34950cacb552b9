"""The command line: validate, graph and schema, as a designer and a CI pipeline use them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_engine.cli import main
from tests.flowdocs import minimal_flow

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples" / "flows").glob("*.json"))


def write(tmp_path: Path, doc: dict[str, object], name: str = "flow.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_validate_clean_flows_exit_0() -> None:
    result = CliRunner().invoke(main, ["validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (0 errors, 0 warnings)") == len(EXAMPLES)


def test_validate_reports_file_line_pointer_and_exits_1(tmp_path: Path) -> None:
    doc = minimal_flow()
    doc["states"]["ask"]["transitions"][0]["target_state"] = "chek"
    path = write(tmp_path, doc)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(f"{path}:")
    assert "error: /states/ask/transitions/0/target_state: no state named 'chek'" in first
    assert "[unknown-state]" in first


def test_validate_json_format_for_tools(tmp_path: Path) -> None:
    doc = minimal_flow()
    doc["initial_state"] = "nowhere"
    good, bad = write(tmp_path, minimal_flow(), "good.json"), write(tmp_path, doc, "bad.json")
    result = CliRunner().invoke(main, ["validate", "--format", "json", str(good), str(bad)])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [r["valid"] for r in report] == [True, False]
    (problem,) = [p for p in report[1]["problems"] if p["severity"] == "error"]
    assert problem["pointer"] == "/initial_state"
    assert problem["severity"] == "error"
    assert problem["line"] > 1


def test_validate_broken_and_missing_files_never_trace(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"flow_id": ')
    result = CliRunner().invoke(main, ["validate", str(broken), str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "json-syntax" in result.output
    assert "unreadable" in result.output


def test_graph_mermaid_and_refuses_an_unparseable_flow(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["graph", str(write(tmp_path, minimal_flow()))])
    assert result.exit_code == 0, result.output
    assert "menu" in result.output
    assert "helping" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = CliRunner().invoke(main, ["graph", str(broken)])
    assert result.exit_code == 1
    assert "json-syntax" in result.output


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is installed by .ci/test")
def test_graph_svg_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"
    result = CliRunner().invoke(
        main, ["graph", str(write(tmp_path, minimal_flow())), "--format", "svg", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))


def test_schema_prints_json_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "MCP Engine flow"


@pytest.mark.slow
def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "mcp-engine"
    result = subprocess.run(
        [str(script), "validate", str(EXAMPLES[0])], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

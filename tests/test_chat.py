"""``mcp-engine chat`` as a newcomer and a script use it: lines in on stdin, the bot's messages out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcp_engine.cli import main

FLOWS = Path(__file__).resolve().parent.parent / "examples" / "flows"


def test_scripted_pizza_order_with_debug() -> None:
    script = "I'd like two large pizzas\nthin\n12 Main Street\n(650) 253-0000\nyes\n"
    result = CliRunner().invoke(main, ["chat", str(FLOWS / "pizza.json"), "--debug"], input=script)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "you> I'd like two large pizzas"
    assert any(line.startswith("bot> ") for line in lines)
    assert '"size": "large"' in result.output
    assert '"count": 2' in result.output
    assert "[state=" in result.output


def test_sub_flows_of_the_same_folder_are_loaded(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["chat", str(FLOWS / "support.json")], input="hello\n")
    assert result.exit_code == 0, result.output
    assert "bot> " in result.output


def test_an_invalid_flow_is_refused_with_its_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"flow_id": "x"}')
    result = CliRunner().invoke(main, ["chat", str(broken)], input="hi\n")
    assert result.exit_code == 1
    assert "missing required field 'initial_state'" in result.output


@pytest.mark.slow
def test_console_script_reads_a_pipe(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "mcp-engine"
    result = subprocess.run(
        [str(script), "chat", str(FLOWS / "pizza.json"), "--db", str(tmp_path / "chat.db")],
        input="I'd like two large pizzas\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "bot> " in result.stdout
    assert (tmp_path / "chat.db").exists()

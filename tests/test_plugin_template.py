"""``mcp-engine new-plugin``: what it renders, what it refuses, and (slow) the whole way of a plugin team.

The slow tests render the template, install the project into a fresh venv beside the engine's, and there
run its own tests, its linters and type checker, and its state type in a flow through ``mcp-engine chat``
and through ``mcp-engine serve`` over REST.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from mcp_engine.cli import main
from mcp_engine.new_plugin import KINDS, engine_requirement
from tests.serve_kit import serve
from tests.template_kit import new_plugin, plugin_venv

RUFF = Path(sys.executable).parent / "ruff"
LONGEST = "gift-cards-and-loyalty-point30"  # the longest name allowed: the lines it makes stay short
MODULES = {
    "state": "states",
    "action": "actions",
    "condition": "conditions",
    "integration": "integrations",
    "rule": "rules",
    "classifier": "classifiers",
    "sink": "sinks",
}


def test_every_kind_by_default(tmp_path: Path) -> None:
    project = new_plugin("loyalty", tmp_path)
    assert project == tmp_path / "mcp-engine-loyalty"
    package = project / "src" / "mcp_engine_loyalty"
    assert sorted(p.stem for p in package.glob("*.py")) == sorted(["__init__", "plugin", *MODULES.values()])
    assert sorted(p.name for p in (project / "tests").glob("test_*.py")) == sorted(
        ["test_flow.py", *(f"test_{module}.py" for module in MODULES.values())]
    )
    metadata = tomllib.loads((project / "pyproject.toml").read_text())
    assert metadata["project"]["name"] == "mcp-engine-loyalty"
    assert metadata["project"]["dependencies"] == [engine_requirement()]
    assert metadata["project"]["entry-points"]["mcp_engine"] == {"loyalty": "mcp_engine_loyalty.plugin"}
    flow = json.loads((project / "flows" / "loyalty_demo.json").read_text())
    assert flow["plugins"] == ["loyalty"]
    assert "skipped whole, with its distribution named" in (project / "README.md").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_one_kind_renders_only_its_example_and_lint_clean_code(tmp_path: Path, kind: str) -> None:
    project = new_plugin(LONGEST, tmp_path, kind)
    package = project / "src" / f"mcp_engine_{LONGEST.replace('-', '_')}"
    assert sorted(p.stem for p in package.glob("*.py")) == sorted(["__init__", "plugin", MODULES[kind]])
    assert (project / "tests" / f"test_{MODULES[kind]}.py").exists()
    json.loads(next((project / "flows").glob("*.json")).read_text())
    for check in (["check"], ["format", "--check"]):
        lint = subprocess.run([str(RUFF), *check, "."], cwd=project, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Loyalty"], "a plugin name is lowercase letters and digits"),
        (["a" * 31], "at most 30 characters"),
        (["loyalty", "--kind", "widget"], "'widget' is not one of"),
    ],
)
def test_a_bad_name_or_kind_is_refused(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["new-plugin", *args, "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_use_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "mcp-engine-loyalty").mkdir()
    (tmp_path / "mcp-engine-loyalty" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new-plugin", "loyalty", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists and is not empty" in result.output
    assert [p.name for p in (tmp_path / "mcp-engine-loyalty").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(("version", "requirement"), [("0.1.0", ">=0.1,<0.2"), ("2.3.1", ">=2.3,<3")])
def test_a_plugin_supports_its_engine_up_to_the_next_breaking_release(version: str, requirement: str) -> None:
    assert engine_requirement(version) == f"mcp-engine{requirement}"


# --- the way of a plugin team, in a fresh venv (slow) ------------------------------------------


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``mcp-engine new-plugin acme`` installed in a new venv beside the engine's: the project, its python."""
    project = new_plugin("acme", tmp_path_factory.mktemp("work"))
    python = plugin_venv(project, tmp_path_factory.mktemp("venv"))
    return project, python


def run(python: Path, *args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "POSTGRES", "REDIS"))}
    return subprocess.run(
        [str(python), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


@pytest.mark.slow
def test_its_own_tests_pass(team: tuple[Path, Path]) -> None:
    project, python = team
    result = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert "failed" not in result.stdout


@pytest.mark.slow
def test_its_code_is_ruff_and_mypy_clean(team: tuple[Path, Path]) -> None:
    project, python = team
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        result = run(python, "-m", *check, cwd=project)
        assert result.returncode == 0, f"{check}: {result.stdout}{result.stderr}"


@pytest.mark.slow
def test_its_state_type_runs_in_chat(team: tuple[Path, Path]) -> None:
    project, python = team
    result = run(
        python,
        "-m",
        "mcp_engine",
        "chat",
        "flows/acme_demo.json",
        cwd=project,
        stdin="reward\ncoffee\ncake\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bot> Which reward would you like? (tea or cake)" in result.stdout
    assert "bot> Please pick one of: tea, cake." in result.stdout
    assert "bot> Enjoy your cake!" in result.stdout


@pytest.mark.slow
async def test_its_state_type_runs_in_a_served_engine(team: tuple[Path, Path], tmp_path: Path) -> None:
    project, python = team
    with serve(
        tmp_path, "--flows", str(project / "flows"), command=(str(python), "-m", "mcp_engine")
    ) as served:
        async with aiohttp.ClientSession(headers={"X-Tenant-ID": "demo"}) as http:
            async with http.get(f"{served.base}/v2/plugins") as response:
                plugins = (await response.json())["plugins"]
            assert {
                "kind": "state type",
                "name": "acme_choice",
                "provider": "mcp-engine-acme",
            }.items() <= next(p for p in plugins if p["name"] == "acme_choice").items()
            replies = []
            for text in ("reward", "cake"):
                body = {"content": {"type": "text", "text": text}, "hints": {"force_flow": "acme_demo"}}
                async with http.post(f"{served.base}/v2/conversations/c1/messages", json=body) as response:
                    assert response.status == 200, await response.text()
                    replies.append(await response.json())
    assert replies[0]["current_state"] == "reward"
    assert replies[0]["messages"][-1]["text"] == "Which reward would you like? (tea or cake)"
    assert replies[1]["messages"][0]["text"] == "Enjoy your cake!"
    assert replies[1]["context_updates"]["slots.reward"] == "cake"

"""README's "Talk to it" snippets run as written against a live ``mcp-engine serve`` (only the ports
are changed to the test server's), so the front page cannot drift from what the engine does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serve_kit import FLOWS_DIR, serve

pytestmark = pytest.mark.slow
README = Path(__file__).parent.parent / "README.md"
ASK_ADDRESS = "Where should we deliver your 2 large pizzas?"


def snippet(language: str, containing: str) -> str:
    """The README's ``language`` code block of the "Talk to it" section that contains ``containing``."""
    section = README.read_text(encoding="utf-8").split("## Talk to it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    (found,) = [block for block in blocks if containing in block]
    return str(found)


def test_the_first_command_serves_the_example_flows() -> None:
    assert "mcp-engine serve --flows examples/flows" in README.read_text(encoding="utf-8")


def test_curl_and_grpc_snippets_against_a_live_server(tmp_path: Path) -> None:
    curl = snippet("sh", "curl")
    client = snippet("python", "grpc.insecure_channel")
    with serve(tmp_path, "--flows", str(FLOWS_DIR)) as served:
        ran = subprocess.run(
            ["sh", "-c", curl.replace(":8002", f":{served.http_port}")],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        reply = json.loads(ran.stdout)
        assert reply["current_state"] == "delivery_details"
        assert reply["messages"][-1]["text"] == ASK_ADDRESS
        assert (reply["context_updates"]["slots.size"], reply["context_updates"]["slots.count"]) == (
            "large",
            2,
        )
        ran = subprocess.run(
            [sys.executable, "-c", client.replace(":50051", f":{served.grpc_port}")],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert ran.stdout.splitlines()[-2:] == [ASK_ADDRESS, "delivery_details"]
        assert served.terminate() == 0

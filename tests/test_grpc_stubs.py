"""The committed gRPC stubs match proto/mcp/v2/mcp.proto, and nothing imports a top-level ``mcp`` package
(that name belongs to another project; protoc's own output would import ``mcp.v2``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from mcp_engine.api.grpc import generate

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("core", "plugins", "rulesets")


def test_committed_stubs_match_the_proto() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mcp_engine.api.grpc.generate", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_sees_a_hand_edited_stub(tmp_path: Path) -> None:
    texts = generate.render()
    for name, text in texts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert generate.drift(texts, tmp_path) == []
    (tmp_path / "mcp_pb2_grpc.py").write_text(texts["mcp_pb2_grpc.py"] + "# edited\n", encoding="utf-8")
    (tmp_path / "mcp_pb2.pyi").unlink()
    diffs = generate.drift(texts, tmp_path)
    assert len(diffs) == 2
    assert "-# edited" in next(d for d in diffs if "committed/mcp_pb2_grpc.py" in d)
    assert any("committed/mcp_pb2.pyi" in d for d in diffs)


def test_stubs_are_marked_generated() -> None:
    for name in generate.FILES:
        first = (generate.HERE / name).read_text(encoding="utf-8").splitlines()[0]
        assert first == generate.HEADER.rstrip("\n")


def _top_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_nothing_imports_a_top_level_mcp_package() -> None:
    sources = [
        p for folder in CODE_DIRS for p in (ROOT / folder).rglob("*.py*") if p.suffix in (".py", ".pyi")
    ]
    assert ROOT / "core" / "api" / "grpc" / "mcp_pb2_grpc.py" in sources
    offenders = [str(p.relative_to(ROOT)) for p in sources if "mcp" in _top_level_imports(p)]
    assert offenders == []

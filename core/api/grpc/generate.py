"""Generate the committed gRPC stubs from ``proto/mcp/v2/mcp.proto``, or check they have not drifted.

``python -m mcp_engine.api.grpc.generate`` writes ``mcp_pb2.py``, ``mcp_pb2.pyi`` and ``mcp_pb2_grpc.py``
next to this module; ``--check`` regenerates into a temporary folder and exits 1 if any committed file
differs, so an edited proto or a hand-edited stub fails CI (tests/test_grpc_stubs.py runs it).

protoc names the generated modules after the proto's path (``mcp/v2/mcp_pb2.py``), which would make the
grpc module import a top-level ``mcp`` package; that name belongs to another project, so the import is
rewritten to ``mcp_engine.api.grpc``.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PROTO_ROOT = ROOT / "proto"
PROTO = "mcp/v2/mcp.proto"
FILES = ("mcp_pb2.py", "mcp_pb2.pyi", "mcp_pb2_grpc.py")
HEADER = f"# Generated from proto/{PROTO} by `python -m mcp_engine.api.grpc.generate`; do not edit.\n"
IMPORTS = {"from mcp.v2 import mcp_pb2": "from mcp_engine.api.grpc import mcp_pb2"}


def render() -> dict[str, str]:
    """Run protoc on the proto and return each stub's final text by file name."""
    if not (PROTO_ROOT / PROTO).is_file():
        raise SystemExit(f"{PROTO_ROOT / PROTO} not found: run this from a source checkout")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                PROTO,
            ],
            check=True,
        )
        generated = Path(tmp) / Path(PROTO).parent
        texts = {name: (generated / name).read_text(encoding="utf-8") for name in FILES}
    for name, text in texts.items():
        for old, new in IMPORTS.items():
            text = text.replace(old, new)
        texts[name] = HEADER + text
    return texts


def drift(texts: dict[str, str], target: Path = HERE) -> list[str]:
    """Unified diffs of every committed stub that differs from ``texts`` (a missing file counts)."""
    diffs: list[str] = []
    for name, expected in texts.items():
        path = target / name
        actual = path.read_text(encoding="utf-8") if path.is_file() else ""
        if actual != expected:
            lines = difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                f"committed/{name}",
                f"generated/{name}",
            )
            diffs.append("".join(lines) or f"{name}: missing\n")
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_engine.api.grpc.generate", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed stubs differ from freshly generated"
    )
    args = parser.parse_args(argv)
    texts = render()
    if args.check:
        diffs = drift(texts)
        sys.stdout.writelines(diffs)
        if diffs:
            print(f"gRPC stubs are stale: run python -m mcp_engine.api.grpc.generate ({len(diffs)} file(s))")
        return 1 if diffs else 0
    for name, text in texts.items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The benchmark tools' own plumbing (no measurement here): another revision's code on PYTHONPATH for
``benchmarks.compare``, and the processes ``benchmarks.cpu_split`` reads CPU from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.compare import revision
from benchmarks.cpu_split import _children, _named, thread_cpu

ROOT = Path(__file__).resolve().parent.parent


def test_a_revision_imports_as_installed_from_its_own_checkout() -> None:
    probe = (
        "import mcp_engine, mcp_engine.plugins.nlu.builtin as b, mcp_engine.rulesets.python as r;"
        " print(mcp_engine.__file__, b.__file__, r.__file__)"
    )
    with revision("HEAD") as tree:
        found = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "PYTHONPATH": tree},
            cwd="/",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert all(path.startswith(tree) for path in found), found
        resolved = [str(Path(path).resolve()) for path in found]
        assert not any(path.startswith(str(ROOT)) for path in resolved), resolved  # the worktree's files
    assert not Path(tree).exists()
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True)
    assert str(Path(tree).parent) not in worktrees.stdout  # removed with it


def test_the_processes_and_threads_cpu_is_read_from() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in _children(os.getpid())
        assert child.pid in _named(Path(sys.executable).name[:15])
        threads = thread_cpu(os.getpid())
        assert os.getpid() in threads
        assert all(cpu >= 0 for cpu in threads.values())
    finally:
        child.kill()
        child.wait()

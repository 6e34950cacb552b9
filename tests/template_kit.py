"""The plugin template in tests: rendered by the real ``mcp-engine new-plugin`` and installed by real pip.

``install_into`` puts a rendered project in a folder (``pip install --target``) for the in-process tests;
``plugin_venv`` makes a fresh virtual environment beside the engine's and installs it there, as a plugin
team would. Both without network and without re-installing the engine: pip's ``--no-deps
--no-build-isolation`` builds with the engine environment's setuptools.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from click.testing import CliRunner

from mcp_engine.cli import main

PIP = (sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index")
QUIET = {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def new_plugin(name: str, parent: Path, *kinds: str) -> Path:
    """``mcp-engine new-plugin NAME --dir PARENT [--kind ...]``; the project's folder."""
    args = ["new-plugin", name, "--dir", str(parent), *(arg for kind in kinds for arg in ("--kind", kind))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (project,) = [path for path in parent.iterdir() if path.name.startswith("mcp-engine-")]
    return project


def install_into(project: Path, site: Path) -> None:
    subprocess.run([*PIP, "--target", str(site), str(project)], check=True, env=os.environ | QUIET)


def plugin_venv(project: Path, folder: Path) -> Path:
    """A fresh venv at ``folder`` that sees the engine's environment (a ``.pth`` file adds its
    site-packages: ``--system-site-packages`` would add the system's, not this venv's), with ``project``
    installed; its python."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    engine_site = sysconfig.get_path("purelib")
    Path(site, "engine.pth").write_text(f"import site; site.addsitedir({engine_site!r})\n")
    pip = [str(python), *PIP[1:]]
    subprocess.run([*pip, str(project)], check=True, env=os.environ | QUIET)
    return python

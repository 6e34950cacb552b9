"""The wheel ships one top-level package, mcp_engine, with every package directory in it."""

import configparser
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = {
    "core": "mcp_engine",
    "plugins": "mcp_engine/plugins",
    "rulesets": "mcp_engine/rulesets",
    "plugin_template": "mcp_engine/plugin_template",
}
TEMPLATE = ROOT / "plugin_template"


def _package_dirs() -> set[str]:
    """Every directory holding an __init__.py under the three code folders, as paths inside the wheel."""
    found = set()
    for folder, target in CODE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).as_posix()
            found.add(target if relative == "." else f"{target}/{relative}")
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it (so a file the sdist forgets is missing from the wheel too)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    return out


def _template_files() -> set[str]:
    """Every file of the plugin template, relative to plugin_template/."""
    return {
        path.relative_to(TEMPLATE).as_posix()
        for path in TEMPLATE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.slow
def test_wheel_ships_only_mcp_engine_and_every_package(built: Path) -> None:
    (wheel,) = built.glob("mcp_engine-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"mcp_engine"}
    shipped = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    assert _package_dirs() <= shipped, f"missing from the wheel: {_package_dirs() - shipped}"
    assert "mcp_engine/py.typed" in names
    static = ROOT / "core" / "api" / "playground" / "static"
    pages = {f"mcp_engine/api/playground/static/{path.name}" for path in static.iterdir()}
    assert "mcp_engine/api/playground/static/index.html" in pages
    assert pages <= set(names), f"playground files missing from the wheel: {pages - set(names)}"
    template = {f"mcp_engine/plugin_template/{name}" for name in _template_files()}
    assert template <= set(names), f"template files missing from the wheel: {template - set(names)}"


@pytest.mark.slow
def test_sdist_ships_the_plugin_template(built: Path) -> None:
    (sdist,) = built.glob("mcp_engine-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    template = {f"plugin_template/{name}" for name in _template_files()}
    assert template <= names, f"template files missing from the sdist: {template - names}"


@pytest.mark.slow
def test_the_installed_wheel_renders_the_plugin_template(built: Path, tmp_path: Path) -> None:
    """``mcp-engine new-plugin`` from the wheel (first on the path), not from the source tree."""
    (wheel,) = built.glob("mcp_engine-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            wheel,
        ],
        check=True,
        capture_output=True,
    )
    render = (
        "import sys, mcp_engine.new_plugin as n; assert n.__file__.startswith(sys.argv[1]), n.__file__; "
        "from pathlib import Path; print(n.render_plugin('wheeled', Path(sys.argv[2])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", render, str(site), str(tmp_path)],
        env=os.environ | {"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mcp-engine-wheeled" / "src" / "mcp_engine_wheeled" / "states.py").is_file()


def test_setup_cfg_lists_every_package() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = {p.strip() for p in config["options"]["packages"].split() if p.strip()}
    expected = {d.replace("/", ".") for d in _package_dirs()}
    assert listed == expected


def test_ruff_bans_importing_the_source_folders() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for folder in CODE_DIRS:
        assert f'"{folder}".msg' in text
    assert (
        (ROOT / "core" / "__init__.py")
        .read_text()
        .startswith('"""core/ is the import package ``mcp_engine``')
    )

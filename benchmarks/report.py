"""Measuring (median and spread over repetitions) and writing the Markdown and JSON reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("mcp-engine", "pydantic", "durable-rules", "pluggy", "jinja2")


@dataclass
class Stats:
    """Seconds per repetition: the median and the spread (min, max)."""

    median: float
    low: float
    high: float
    repetitions: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def ms(self) -> str:
        return f"{self.median * 1e3:.2f} ms ({self.low * 1e3:.2f}-{self.high * 1e3:.2f})"


def repeat(fn: Callable[[], object], repetitions: int) -> Stats:
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Stats.of(samples)


@dataclass
class Target:
    name: str
    value: str
    met: bool


@dataclass
class Section:
    """One benchmark's table, with the ratios and targets it measured in the same run."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [
            f"## {self.title}",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.targets:
            lines += ["", "| target | measured | met |", "|---|---|---|"]
            lines += [f"| {t.name} | {t.value} | {'yes' if t.met else 'NO'} |" for t in self.targets]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def environment() -> dict[str, Any]:
    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: pkg(name) for name in PACKAGES},
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write(sections: list[Section], out_dir: Path, quick: bool) -> tuple[Path, Path]:
    env = environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    header = [
        "# MCP Engine benchmark report" + (" (quick)" if quick else ""),
        "",
        f"{env['date']} - commit {env['commit']} - {env['processor']}, {env['cores']} cores - "
        f"Python {env['python']} - " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
        "",
    ]
    markdown = out_dir / "report.md"
    markdown.write_text("\n".join(header) + "\n".join(s.markdown() for s in sections))
    data = out_dir / "report.json"
    data.write_text(
        json.dumps({"environment": env, "quick": quick, "sections": [asdict(s) for s in sections]}, indent=2)
    )
    return markdown, data

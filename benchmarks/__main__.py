"""``python -m benchmarks [NAME...] [--quick]``: run benchmarks and write the Markdown and JSON report."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from benchmarks.report import Section, write

BENCHMARKS = {
    "rules": "benchmarks.rules",
    "compile": "benchmarks.compile",
    "turns": "benchmarks.turns",
    "grpc": "benchmarks.grpc_turns",
    "rest": "benchmarks.rest",
    "floor": "benchmarks.floor",
    "scaling": "benchmarks.scaling",
    "multiprocess": "benchmarks.multiprocess",
    "experiments": "benchmarks.experiments",
    "attacks": "benchmarks.attacks",
    "workers": "benchmarks.workers",
    "memory": "benchmarks.memory",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, "all"], default="all", metavar="NAME")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts: under a minute")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/reports"), help="report folder")
    parser.add_argument("--no-report", action="store_true", help="print only; write no files")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if args.names in ("all", ["all"]) or not args.names else args.names
    sections: list[Section] = []
    for name in names:
        started = time.perf_counter()
        section: Section = importlib.import_module(BENCHMARKS[name]).run(quick=args.quick)
        section.notes.append(f"took {time.perf_counter() - started:.1f} s")
        print(section.markdown(), flush=True)
        sections.append(section)
    if not args.no_report:
        markdown, data = write(sections, args.out, args.quick)
        print(f"report: {markdown} and {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks [NAME...] [--quick]``: run benchmarks and write the Markdown and JSON report."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from benchmarks.report import Section, write
from benchmarks.shared import sharing

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
    "split": "benchmarks.cpu_split",
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
    began = time.perf_counter()
    # --quick: the sets share their servers (start-up is most of a quick set's time); the full run does not.
    with sharing() if args.quick else nullcontext():
        for name in names:
            started = time.perf_counter()
            section: Section = importlib.import_module(BENCHMARKS[name]).run(quick=args.quick)
            section.notes.append(f"took {time.perf_counter() - started:.1f} s")
            print(section.markdown(), flush=True)
            sections.append(section)
    if not args.no_report:
        markdown, data = write(sections, args.out, args.quick)
        print(f"report: {markdown} and {data}")
    command = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"python -m benchmarks {command}: took {time.perf_counter() - began:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

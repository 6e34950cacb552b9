"""``python -m benchmarks.compare REV [NEW] [--store embedded|production] [--rounds 4] [--calls 4000]``: the
served engine of git revision ``REV`` against this checkout's (or revision ``NEW``'s), in one session: how a
lever is shown (``python -m benchmarks.compare HEAD~1``).

Each side is ``mcp-engine serve`` on a fresh store, loaded over gRPC by one client process (pizza happy
path, distinct conversations, 16 in flight); ``REV``'s engine is the same installed environment with its
own code first on ``PYTHONPATH`` (a git worktree of ``REV`` and a tree of links laid out as the package
is installed, from setup.cfg's ``package_dir``). Rounds alternate the order (A B, B A, ...): on this
machine the first server of a pair measured up to 8 % faster whichever it was. Reported per side: the
median calls/s, server CPU per call (all its threads, from ``/proc``), its loop thread's, and the p99.
"""

from __future__ import annotations

import argparse
import configparser
import os
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.client import LoadClient, load_client
from benchmarks.cpu_split import IN_FLIGHT, cpu_per_call
from benchmarks.load import ROOT, served_engines
from benchmarks.shared import sharing


@contextmanager
def revision(rev: str) -> Iterator[str]:
    """A ``PYTHONPATH`` entry that imports ``mcp_engine`` as it was at ``rev``."""
    with tempfile.TemporaryDirectory() as scratch:
        checkout = Path(scratch) / "checkout"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(checkout), rev], check=True, capture_output=True)
        try:
            config = configparser.ConfigParser()
            config.read(checkout / "setup.cfg")
            mapping = dict(
                line.split("=", 1) for line in config["options"]["package_dir"].strip().splitlines()
            )
            tree = Path(scratch) / "tree"
            for package, folder in sorted((k.strip(), v.strip()) for k, v in mapping.items()):
                target = tree.joinpath(*package.split("."))
                target.mkdir(parents=True, exist_ok=True)
                for entry in (checkout / folder).iterdir():
                    if not (target / entry.name).exists():
                        (target / entry.name).symlink_to(entry)
            yield str(tree)
        finally:
            subprocess.run([*git, "remove", "--force", str(checkout)], check=True, capture_output=True)


def measure(store: str, env: dict[str, str], calls: int, client: LoadClient) -> tuple[float, ...]:
    """(calls/s, server CPU µs a call, loop thread µs a call, p99 ms) of one fresh served engine."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with sharing(), served_engines(store) as served:
            cpu = cpu_per_call(client, served.grpc_ports, served.pids[0], calls)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return cpu["calls/s"], cpu["loop thread"] + cpu["other threads"], cpu["loop thread"], cpu["p99 ms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("rev", help="the git revision to compare with (e.g. HEAD~1)")
    parser.add_argument("new", nargs="?", help="another revision instead of this checkout")
    parser.add_argument("--store", choices=("embedded", "production"), default="embedded")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=4000)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        old = stack.enter_context(revision(args.rev))
        new = {"PYTHONPATH": stack.enter_context(revision(args.new))} if args.new else {}
        stack.enter_context(sharing())
        client = stack.enter_context(load_client())
        sides = [(args.rev, {"PYTHONPATH": old}), (args.new or "this checkout", new)]
        runs: dict[str, list[tuple[float, ...]]] = {name: [] for name, _ in sides}
        for n in range(args.rounds):
            for name, env in sides if n % 2 == 0 else sides[::-1]:
                run = measure(args.store, env, args.calls, client)
                runs[name].append(run)
                print(f"round {n} {name}: {run[0]:,.0f} calls/s, {run[1]:.0f} µs CPU a call", flush=True)
    print(f"\n{args.store} store, {IN_FLIGHT} in flight, {args.rounds} x {args.calls} calls a side")
    print("| engine | calls/s | server CPU µs/call | loop thread µs/call | p99 ms |\n|---|---|---|---|---|")
    for name, measured in runs.items():
        rate, cpu, loop, p99 = (statistics.median(column) for column in zip(*measured, strict=True))
        print(f"| {name} | {rate:,.0f} | {cpu:.0f} | {loop:.0f} | {p99:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

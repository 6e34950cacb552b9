"""Where a served call's CPU goes: per call, the server's event-loop thread and its other threads, the
store servers (redis-server, every PostgreSQL process) and the load client, for the bare gRPC echo, the
floor handler and the engine on each store (pizza happy path, 16 in flight, one process each).

CPU is read from ``/proc`` (each thread's and process's user + system time) around one load run. With
py-spy on the PATH (``pip install py-spy``; not a dependency) a second run samples the engine's loop
thread, and its CPU is split by what each sample was running: the engine's own code, the libraries it
calls (NLU, extractors, templates, logging, metrics, pydantic), the store clients (redis-py, asyncpg, and
the SQLite statements the embedded store runs on the loop) and gRPC with the event loop (C code with no
Python frame of its own). Only shares come from the samples: py-spy slows what it samples.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from benchmarks.client import Job, LoadClient, load_client
from benchmarks.floor import _floor_server
from benchmarks.grpc_turns import _echo_server
from benchmarks.load import bare_server, percentile_ms, served_engines, sync_backing
from benchmarks.report import Section

IN_FLIGHT = 16
TICK = os.sysconf("SC_CLK_TCK")
# (pattern in a sample's innermost frame, part): the first that matches names the part
PARTS = (
    (r"redis/|asyncpg/|aiosqlite/|^(_fetch|_transact|_commit_turns?|_compare_and_set) \(", "store client"),
    (r"mcp_engine/", "engine code"),
    (r"grpc/|asyncio/|uvloop|\(asyncio/runners\.py|selectors", "gRPC + event loop"),
)
LOOP_ONLY = re.compile(r"^Runner\.run \(asyncio/runners\.py:\d+\)$")  # no Python frame: C code under the loop


def _cpu(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> dict[int, float]:
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = _cpu(f"{task}/stat")
        except OSError:
            continue
    return found


def _processes() -> Iterator[tuple[int, str, int]]:
    """(pid, name, parent's pid) of every process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:  # it exited meanwhile
                continue
            yield int(entry.name), head.split("(", 1)[1], int(tail.split()[1])


def _named(*names: str) -> list[int]:
    return [pid for pid, name, _ in _processes() if name.startswith(names)]


def _children(of: int) -> list[int]:
    return [pid for pid, _, parent in _processes() if parent == of]


def _listener(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:``port``."""
    listing = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    return int(re.findall(r"pid=(\d+)", listing)[0])


def _sum(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += _cpu(f"/proc/{pid}/stat")
        except OSError:
            continue
    return total


def cpu_per_call(
    client: LoadClient, ports: tuple[int, ...], server: int, calls: int, others: list[int] | None = None
) -> dict[str, float]:
    """``calls`` gRPC calls (16 in flight) after a warm-up: calls/s, the p99 in ms, and µs of CPU per
    call of the server's loop thread (its main one), its other threads, the stores' servers and
    ``others`` (the load client)."""
    stores, others = _named("redis-server", "postgres"), others or []
    client.run(Job("grpc", ports, IN_FLIGHT, min(calls, 400)))
    threads, store, load = thread_cpu(server), _sum(stores), _sum(others)
    outcome = client.run(Job("grpc", ports, IN_FLIGHT, calls))
    after = thread_cpu(server)
    loop = after.get(server, 0.0) - threads.get(server, 0.0)
    rest = sum(v - threads.get(k, 0.0) for k, v in after.items() if k != server)
    per = 1e6 / max(len(outcome.latencies), 1)
    return {
        "calls/s": outcome.rate,
        "p99 ms": percentile_ms(outcome.latencies, 0.99),
        "loop thread": loop * per,
        "other threads": rest * per,
        "store servers": (_sum(stores) - store) * per,
        "load client": (_sum(others) - load) * per,
    }


def _shares(client: LoadClient, port: int, server: int, calls: int) -> dict[str, float] | None:
    """The loop thread's samples by part (py-spy), or None without py-spy."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return None
    out = Path(f"/tmp/cpu_split_{os.getpid()}_{server}.txt")
    sampler = subprocess.Popen(
        [spy, "record", "-p", str(server), "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking", "-t"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    client.run(Job("grpc", (port,), IN_FLIGHT, calls))
    sampler.send_signal(2)
    sampler.wait(timeout=60)
    parts: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        leaf = frames[-1] if len(frames) > 1 else ""
        part = "gRPC + event loop" if LOOP_ONLY.match(leaf) or not leaf else None
        for pattern, name in PARTS:
            if part is None and re.search(pattern, leaf):
                part = name
        parts[part or "libraries"] += int(count)
    out.unlink()
    total = sum(parts.values()) or 1
    return {name: count / total for name, count in parts.items()}


def _server(kind: str, name: str) -> AbstractContextManager[Any]:
    if kind == "bare echo":
        return bare_server(_echo_server)
    if kind == "floor handler":
        return bare_server(_floor_server, name)
    return served_engines(kind.removeprefix("engine, "))


def run(quick: bool = False) -> Section:
    calls = 200 if quick else 4000
    kinds = (
        ("engine, embedded",)
        if quick
        else ("bare echo", "floor handler", "engine, embedded", "engine, production")
    )
    columns = ["loop thread", "other threads", "store servers", "load client"]
    parts = ["engine code", "libraries", "store client", "gRPC + event loop"]
    rows: list[list[str]] = []
    figures: dict[str, object] = {}
    with sync_backing() as name, load_client() as client:
        for kind in kinds:
            with _server(kind, name) as served:
                port = served if isinstance(served, int) else served.grpc_ports[0]
                server = _listener(port)
                others = [pid for pid in _children(os.getpid()) if pid != server]
                measured = cpu_per_call(client, (port,), server, calls, others)
                shares = None if quick or kind.startswith("bare") else _shares(client, port, server, calls)
            figures[kind] = {**measured, "shares": shares}
            split = (
                " / ".join(f"{measured['loop thread'] * shares.get(p, 0.0):.0f}" for p in parts)
                if shares
                else ""
            )
            rows.append(
                [kind, f"{measured['calls/s']:,.0f}", *(f"{measured[c]:.0f}" for c in columns), split]
            )
    return Section(
        "Where a served call's CPU goes (µs of CPU per call, gRPC, 16 in flight)",
        ["server", "calls/s", *columns, "loop thread: " + " / ".join(parts)],
        rows,
        [],
        notes=[
            f"{calls} calls per server after a warm-up; CPU from /proc (user + system) around the run.",
            "store servers: redis-server and every PostgreSQL process on the machine, whichever the server"
            " uses.",
            "The loop thread's split is by py-spy samples of a second run (shares only; empty without"
            " py-spy): store client is redis-py, asyncpg and the SQLite statements the embedded store runs on"
            " the loop; the engine's own store code is engine code.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

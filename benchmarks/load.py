"""What the throughput benchmarks share: the pizza script, running it in process or against a served
engine from a separate load process, and the rows comparing a measured thing with its same-run baseline."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.report import Stats
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.store.base import Store
from mcp_engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ("I'd like two large pizzas", "thin crust please", "12 Main Street", "(650) 253-0000", "yes")
TIME_LIMIT_S = 60.0
Run = tuple[float, list[float]]  # (calls per second, latencies in seconds)


def percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


async def timed_conversations(conversations: int, in_flight: int, turn: Callable[[int, str], Any]) -> Run:
    """Each conversation sends ``SCRIPT`` in order; ``in_flight`` conversations run at once."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(in_flight)

    async def converse(n: int) -> None:
        async with gate:
            for text in SCRIPT:
                started = time.perf_counter()
                await turn(n, text)
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(converse(n) for n in range(conversations)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def pizza_turns(store: Store, conversations: int, in_flight: int) -> Run:
    """``ExecutionService`` in this process, on ``store``, with the pizza flow as the default."""
    engine = ExecutionService(store)
    await engine.start()
    try:
        document = json.loads((ROOT / "examples" / "flows" / "pizza.json").read_text())
        await engine.publish_flow(document, make_default=True)

        async def turn(n: int, text: str) -> None:
            await engine.process_message("demo", f"c{n}", InboundMessage(text=text, user_id=f"u{n}"))

        return await timed_conversations(conversations, in_flight, turn)
    finally:
        await engine.close()


Measure = Callable[[str, int, int], Awaitable[Run]]  # (scratch folder, conversations, in flight) -> Run


async def sqlite_pizza(scratch: str, conversations: int, in_flight: int) -> Run:
    """The engine's pizza turns on a fresh embedded store in ``scratch``."""
    return await pizza_turns(SQLiteStore(f"{scratch}/engine.db"), conversations, in_flight)


def in_process(
    measured: tuple[str, Measure], baseline: tuple[str, Measure], conversations: int
) -> tuple[list[list[str]], dict[int, float], dict[str, object]]:
    """Two in-process measures at 1 and 16 in flight, 3 repetitions each, a fresh scratch folder each time."""
    rows: list[list[str]] = []
    ratios: dict[int, float] = {}
    figures: dict[str, object] = {}
    for in_flight in (1, 16):
        runs: dict[str, list[Run]] = {measured[0]: [], baseline[0]: []}
        for _ in range(3):
            for label, measure in (measured, baseline):
                with tempfile.TemporaryDirectory() as scratch:
                    runs[label].append(asyncio.run(measure(scratch, conversations, in_flight)))
        level_rows, ratios[in_flight], figures[str(in_flight)] = compare(
            in_flight, runs, measured[0], baseline[0]
        )
        rows += level_rows
    return rows, ratios, figures


def compare(
    in_flight: int, runs: dict[str, list[Run]], measured: str, baseline: str
) -> tuple[list[list[str]], float, dict[str, float]]:
    """Table rows (label, in flight, rate, p50, p99, ratio), the ratio measured/baseline and its figures."""
    stats = {label: Stats.of([rate for rate, _ in label_runs]) for label, label_runs in runs.items()}
    ratio = stats[measured].median / stats[baseline].median
    rows, figures = [], {"ratio": ratio}
    for label, label_runs in runs.items():
        latencies = [x for _, lat in label_runs for x in lat]
        s = stats[label]
        rows.append(
            [
                label,
                str(in_flight),
                f"{s.median:,.0f} ({s.low:,.0f}-{s.high:,.0f})",
                f"{percentile_ms(latencies, 0.5):.2f}",
                f"{percentile_ms(latencies, 0.99):.2f}",
                f"{ratio:.2f}" if label == measured else "",
            ]
        )
        figures.update(
            {
                f"{label}_per_s": s.median,
                f"{label}_p50_ms": percentile_ms(latencies, 0.5),
                f"{label}_p99_ms": percentile_ms(latencies, 0.99),
            }
        )
    return rows, ratio, figures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def spawned_load(client: Callable[[int, int, int, Any], None], port: int, in_flight: int, calls: int) -> Run:
    """Run ``client(port, in_flight, calls, queue)`` in its own process, so its CPU is not the server's.

    The client puts its latencies on the queue with the wall time appended as a negative number."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=client, args=(port, in_flight, calls, queue))
    process.start()
    latencies: list[float] = queue.get(timeout=TIME_LIMIT_S + 30)
    process.join(timeout=10)
    wall = -latencies.pop()
    return len(latencies) / wall, latencies


@contextmanager
def served_engine(scratch: str, http_port: int, grpc_port: int) -> Iterator[None]:
    """``mcp-engine serve --flows examples/flows`` (embedded SQLite, auth off) while the block runs."""
    env = {
        **os.environ,
        "GRPC_PORT": str(grpc_port),
        "HTTP_PORT": str(http_port),
        "MCP_SQLITE_PATH": f"{scratch}/bench.db",
        "MCP_AUTH": "off",
        "MAX_PARALLEL_EXECUTIONS": "1000",
    }
    command = [
        str(Path(sys.executable).parent / "mcp-engine"),
        "serve",
        "--flows",
        str(ROOT / "examples" / "flows"),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(http_port)
        wait_for(grpc_port)
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


Client = Callable[[int, int, int, Any], None]


def against_echo(
    echo_server: Callable[[int], None], client: Client, protocol: str, calls: int
) -> tuple[list[list[str]], dict[int, float], dict[str, object]]:
    """The served engine vs ``echo_server`` (a bare server of the same protocol, in its own process),
    loaded by ``client`` from another process at 1, 16 and 64 in flight, 3 runs each."""
    grpc_port, http_port, echo_port = free_port(), free_port(), free_port()
    engine_port = grpc_port if protocol == "grpc" else http_port
    echo = multiprocessing.get_context("spawn").Process(target=echo_server, args=(echo_port,), daemon=True)
    echo.start()
    rows: list[list[str]] = []
    ratios: dict[int, float] = {}
    figures: dict[str, object] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch, served_engine(scratch, http_port, grpc_port):
            wait_for(echo_port)
            for in_flight in (1, 16, 64):
                runs = {
                    "engine": [spawned_load(client, engine_port, in_flight, calls) for _ in range(3)],
                    "bare echo": [spawned_load(client, echo_port, in_flight, calls) for _ in range(3)],
                }
                level_rows, ratios[in_flight], figures[str(in_flight)] = compare(
                    in_flight, runs, "engine", "bare echo"
                )
                rows += level_rows
    finally:
        echo.kill()
    return rows, ratios, figures

"""What the throughput benchmarks share: the pizza script run in process or against served engines, the
servers (engines on either store, bare baselines), a fresh PostgreSQL schema + Redis prefix per run, and
the rows comparing measured things with their baselines from the same run."""

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
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as redis

from benchmarks.client import SCRIPT, Job, LoadClient, load_client
from benchmarks.report import Stats
from benchmarks.shared import shared
from mcp_engine.runtime.execution import ExecutionService, InboundMessage
from mcp_engine.store.base import Store
from mcp_engine.store.postgres import ProductionStore
from mcp_engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URI = os.environ.get("MCP_TEST_POSTGRES_URI", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MCP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
__all__ = ["SCRIPT"]
Run = tuple[float, list[float]]  # (calls per second, latencies in seconds)


@dataclass(frozen=True)
class Plan:
    """How much a set measures: in-flight levels, repetitions of each, calls per run."""

    levels: tuple[int, ...]
    repetitions: int
    calls: int

    @classmethod
    def of(cls, quick: bool, calls: int = 1_000, levels: tuple[int, ...] = (1, 16, 64)) -> Plan:
        """The full plan, or the quick one: one repetition at 16 in flight of one happy path per in-flight
        slot (CI proves the harness works with it and judges no number)."""
        return cls((16,), 1, 16 * len(SCRIPT)) if quick else cls(levels, 3, calls)


def percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")


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
        await engine.catalogue.publish_document(document, make_default=True)

        async def turn(n: int, text: str) -> None:
            await engine.process_message("demo", f"c{n}", InboundMessage(text=text, user_id=f"u{n}"))

        return await timed_conversations(conversations, in_flight, turn)
    finally:
        await engine.close()


Measure = Callable[[str, int, int], Awaitable[Run]]  # (scratch folder, conversations, in flight) -> Run


async def sqlite_pizza(scratch: str, conversations: int, in_flight: int) -> Run:
    """The engine's pizza turns on a fresh embedded store in ``scratch``."""
    return await pizza_turns(SQLiteStore(f"{scratch}/engine.db"), conversations, in_flight)


async def production_pizza(_scratch: str, conversations: int, in_flight: int) -> Run:
    """The engine's pizza turns on a fresh PostgreSQL schema and Redis key prefix."""
    async with backing() as name:
        store = ProductionStore(POSTGRES_URI, REDIS_URL, schema=name, key_prefix=name)
        return await pizza_turns(store, conversations, in_flight)


@asynccontextmanager
async def backing() -> AsyncIterator[str]:
    """A new name for a PostgreSQL schema and a Redis key prefix, both removed afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        connection = await asyncpg.connect(POSTGRES_URI)
        try:
            await connection.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await connection.close()
        client = redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{name}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])
        finally:
            await client.aclose()


@contextmanager
def sync_backing() -> Iterator[str]:
    """``backing`` for code outside an event loop (served engines in other processes)."""
    manager = backing()
    name = asyncio.run(manager.__aenter__())
    try:
        yield name
    finally:
        asyncio.run(manager.__aexit__(None, None, None))


def in_process(
    measures: dict[str, Measure], baselines: dict[str, str], conversations: int, quick: bool
) -> tuple[list[list[str]], dict[str, dict[int, float]], dict[str, object]]:
    """In-process measures at 1 and 16 in flight (16 only with ``quick``), 3 repetitions each (1 with
    ``quick``), a fresh scratch folder each time, interleaved so that drift hits every measure alike."""
    rows: list[list[str]] = []
    ratios: dict[str, dict[int, float]] = {label: {} for label in baselines}
    figures: dict[str, object] = {}
    for in_flight in (16,) if quick else (1, 16):
        runs: dict[str, list[Run]] = {label: [] for label in measures}
        for _ in range(1 if quick else 3):
            for label, measure in measures.items():
                with tempfile.TemporaryDirectory() as scratch:
                    runs[label].append(asyncio.run(measure(scratch, conversations, in_flight)))
        level_rows, level_ratios, figures[str(in_flight)] = compare(in_flight, runs, baselines)
        rows += level_rows
        for label, ratio in level_ratios.items():
            ratios[label][in_flight] = ratio
    return rows, ratios, figures


def compare(
    in_flight: int, runs: dict[str, list[Run]], baselines: dict[str, str]
) -> tuple[list[list[str]], dict[str, float], dict[str, float]]:
    """Table rows (label, in flight, rate, p50, p99, ratio), each ratio measured/baseline (``baselines``
    maps a measured label to its baseline's), and the figures."""
    stats = {label: Stats.of([rate for rate, _ in label_runs]) for label, label_runs in runs.items()}
    ratios = {label: stats[label].median / stats[base].median for label, base in baselines.items()}
    rows: list[list[str]] = []
    figures: dict[str, float] = {}
    for label, label_runs in runs.items():
        latencies = [x for _, lat in label_runs for x in lat]
        s = stats[label]
        ratio = f"{ratios[label]:.2f} of {baselines[label]}" if label in ratios else ""
        p50, p99 = percentile_ms(latencies, 0.5), percentile_ms(latencies, 0.99)
        rows.append(
            [
                label,
                str(in_flight),
                f"{s.median:,.0f} ({s.low:,.0f}-{s.high:,.0f})",
                f"{p50:.2f}",
                f"{p99:.2f}",
                ratio,
            ]
        )
        figures.update({f"{label}_per_s": s.median, f"{label}_p50_ms": p50, f"{label}_p99_ms": p99})
        if label in ratios:
            figures[f"{label}/{baselines[label]}"] = ratios[label]
    return rows, ratios, figures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> int:
    """How many sockets listen on ``port`` (several, when processes share it with SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            count += fields[1].endswith(f":{port:04X}") and fields[3] == "0A"  # 0A: LISTEN
    return count


def wait_for(
    port: int, process: subprocess.Popen[bytes] | multiprocessing.process.BaseProcess, sockets: int = 1
) -> None:
    """Until ``sockets`` listen on ``port``; a server process that died first fails at once."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if listening(port) >= sockets:
            return
        exited = process.poll() if isinstance(process, subprocess.Popen) else process.exitcode
        if exited is not None:
            raise RuntimeError(f"the server for 127.0.0.1:{port} exited with status {exited}")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass(frozen=True)
class Served:
    """Engines being served: each process's (REST port, gRPC port) and pid."""

    http_ports: tuple[int, ...]
    grpc_ports: tuple[int, ...]
    pids: tuple[int, ...] = ()

    def ports(self, protocol: str) -> tuple[int, ...]:
        return self.grpc_ports if protocol == "grpc" else self.http_ports


@contextmanager
def served_engines(store: str, processes: int = 1, workers: int = 1) -> Iterator[Served]:
    """``mcp-engine serve --flows examples/flows --workers W`` (auth off) in ``processes`` processes while
    the block runs: on a fresh embedded SQLite file (``store`` "embedded", one process) or on one fresh
    PostgreSQL schema + Redis prefix that all of them share ("production"). Inside ``shared.sharing()``,
    the run's one for these arguments."""
    key = ("engines", store, processes, workers)
    with shared(key, lambda: _served_engines(store, processes, workers)) as served:
        yield served


@contextmanager
def _served_engines(store: str, processes: int, workers: int) -> Iterator[Served]:
    with tempfile.TemporaryDirectory() as scratch, _store_env(store, scratch) as store_env:
        ports = [(free_port(), free_port()) for _ in range(processes)]
        servers = []
        command = [
            str(Path(sys.executable).parent / "mcp-engine"),
            "serve",
            "--flows",
            str(ROOT / "examples" / "flows"),
            "--workers",
            str(workers),
        ]
        try:
            for http_port, grpc_port in ports:
                env = {
                    **os.environ,
                    **store_env,
                    "GRPC_PORT": str(grpc_port),
                    "HTTP_PORT": str(http_port),
                    "MCP_AUTH": "off",
                    "MAX_PARALLEL_EXECUTIONS": "1000",
                }
                servers.append(
                    subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
            for server, (http_port, grpc_port) in zip(servers, ports, strict=True):
                wait_for(http_port, server, workers)
                wait_for(grpc_port, server, workers)
            yield Served(
                tuple(p for p, _ in ports), tuple(p for _, p in ports), tuple(s.pid for s in servers)
            )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)


@contextmanager
def _store_env(store: str, scratch: str) -> Iterator[dict[str, str]]:
    if store == "embedded":
        yield {"MCP_SQLITE_PATH": f"{scratch}/bench.db"}
        return
    with sync_backing() as name:
        yield {
            "POSTGRES_URI": POSTGRES_URI,
            "REDIS_URL": REDIS_URL,
            "MCP_POSTGRES_SCHEMA": name,
            "MCP_REDIS_PREFIX": name,
        }


@contextmanager
def bare_server(target: Callable[..., None], *args: Any, processes: int = 1) -> Iterator[int]:
    """``target(port, *args)`` serving in ``processes`` processes of its own (sharing the port: grpc.aio
    binds with SO_REUSEPORT) while the block runs; yields the port. Inside ``shared.sharing()``, the run's
    one for these arguments."""
    with shared(("bare", target, args, processes), lambda: _bare_server(target, args, processes)) as port:
        yield port


@contextmanager
def _bare_server(target: Callable[..., None], args: tuple[Any, ...], processes: int) -> Iterator[int]:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    servers = [context.Process(target=target, args=(port, *args), daemon=True) for _ in range(processes)]
    for process in servers:
        process.start()
    try:
        wait_for(port, servers[0], processes)
        yield port
    finally:
        for process in servers:
            process.kill()
            process.join(timeout=10)


def run_on_serve_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main()`` on the event loop ``mcp-engine serve`` uses (uvloop where installed), so that bare
    baselines and the engine are measured on the same loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())


Endpoint = tuple[str, tuple[int, ...]]  # (protocol, ports)


def engines_against_echo(
    protocol: str, echo_server: Callable[[int], None], plan: Plan
) -> tuple[list[list[str]], dict[str, dict[int, float]], dict[str, object]]:
    """The engine served on each store and a bare echo server of ``protocol`` ("grpc" or "http"), loaded
    alike by one client; ratios engine/echo."""
    with (
        served_engines("embedded") as embedded,
        served_engines("production") as production,
        bare_server(echo_server) as echo,
        load_client() as client,
    ):
        return against_baselines(
            client,
            {
                "engine, embedded": (protocol, embedded.ports(protocol)),
                "engine, production": (protocol, production.ports(protocol)),
                "bare echo": (protocol, (echo,)),
            },
            {"engine, embedded": "bare echo", "engine, production": "bare echo"},
            plan,
        )


def against_baselines(
    client: LoadClient, targets: dict[str, Endpoint], baselines: dict[str, str], plan: Plan
) -> tuple[list[list[str]], dict[str, dict[int, float]], dict[str, object]]:
    """Each target loaded by ``client`` at each level of ``plan``, runs interleaved (so drift hits every
    target alike), each distinct conversations doing the pizza happy path."""
    rows: list[list[str]] = []
    ratios: dict[str, dict[int, float]] = {label: {} for label in baselines}
    figures: dict[str, object] = {}
    for in_flight in plan.levels:
        runs: dict[str, list[Run]] = {label: [] for label in targets}
        failures: dict[str, int] = {}
        for _ in range(plan.repetitions):
            for label, (protocol, ports) in targets.items():
                outcome = client.run(Job(protocol, ports, in_flight, plan.calls))
                runs[label].append((outcome.rate, outcome.latencies))
                for status, count in outcome.failures.items():
                    failures[f"{label}: {status}"] = failures.get(f"{label}: {status}", 0) + count
        level_rows, level_ratios, level_figures = compare(in_flight, runs, baselines)
        figures[str(in_flight)] = {**level_figures, "failures": failures}
        rows += level_rows
        for label, ratio in level_ratios.items():
            ratios[label][in_flight] = ratio
    return rows, ratios, figures

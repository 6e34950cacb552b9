"""gRPC ProcessMessage on the pizza flow vs a bare ``grpc.aio`` echo with the same messages.

Three processes: ``mcp-engine serve`` (embedded SQLite), a bare echo servicer, and the load client,
so the client's CPU is not the server's. Calls go to distinct conversations (each the pizza happy path)
with 1, 16 and 64 in flight; every loop is bounded in count and time; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks.report import Section, Stats, Target
from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ("I'd like two large pizzas", "thin crust please", "12 Main Street", "(650) 253-0000", "yes")
TIME_LIMIT_S = 60.0


class Echo(mcp_pb2_grpc.MCPEngineServicer):
    """Answers like the engine, doing nothing: the floor of gRPC itself on this machine."""

    async def ProcessMessage(self, request: Any, context: Any) -> Any:
        reply = mcp_pb2.MessageContent(type="text", text=f"echo: {request.content.text}")
        return mcp_pb2.ProcessMessageResponse(
            conversation_id=request.conversation_id,
            current_state="echo",
            response=reply,
            messages=[reply],
            context_updates={"slots.size": '"large"'},
            actions_performed=["send_message"],
            confidence_scores={"order_pizza": 1.0},
            processing_time_ms=0,
            flow_id="pizza",
            flow_version="1.0.0",
        )


def _echo_server(port: int) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        mcp_pb2_grpc.add_MCPEngineServicer_to_server(Echo(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def _client(port: int, in_flight: int, calls: int, queue: Any) -> None:
    async def main() -> list[float]:
        latencies: list[float] = []
        stop_at = time.monotonic() + TIME_LIMIT_S
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = mcp_pb2_grpc.MCPEngineStub(channel)
            await channel.channel_ready()
            per_worker = max(1, calls // in_flight)

            async def worker(w: int) -> None:
                for i in range(per_worker):
                    if time.monotonic() > stop_at:
                        return
                    request = mcp_pb2.ProcessMessageRequest(
                        tenant_id="demo",
                        conversation_id=f"bench-{os.getpid()}-{w}-{i // len(SCRIPT)}",
                        content=mcp_pb2.MessageContent(type="text", text=SCRIPT[i % len(SCRIPT)]),
                        hints=mcp_pb2.ProcessingHints(force_flow="pizza"),
                    )
                    started = time.perf_counter()
                    await stub.ProcessMessage(request, timeout=30)
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(in_flight)))
            latencies.append(-(time.perf_counter() - started))  # the wall time, marked negative
        return latencies

    queue.put(asyncio.run(main()))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _load(port: int, in_flight: int, calls: int) -> tuple[float, list[float]]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    client = context.Process(target=_client, args=(port, in_flight, calls, queue))
    client.start()
    latencies: list[float] = queue.get(timeout=TIME_LIMIT_S + 30)
    client.join(timeout=10)
    wall = -latencies.pop()
    return len(latencies) / wall, latencies


def _p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def run(quick: bool = False) -> Section:
    calls = 320 if quick else 1600
    levels = (1, 16, 64)
    engine_port, http_port, echo_port = _free_port(), _free_port(), _free_port()
    context = multiprocessing.get_context("spawn")
    echo = context.Process(target=_echo_server, args=(echo_port,), daemon=True)
    echo.start()
    with tempfile.TemporaryDirectory() as scratch:
        env = {
            **os.environ,
            "GRPC_PORT": str(engine_port),
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
            _wait_for(engine_port)
            _wait_for(echo_port)
            rows, figures, ratios = [], {}, {}
            for in_flight in levels:
                engine_runs = [_load(engine_port, in_flight, calls) for _ in range(3)]
                echo_runs = [_load(echo_port, in_flight, calls) for _ in range(3)]
                engine = Stats.of([rate for rate, _ in engine_runs])
                bare = Stats.of([rate for rate, _ in echo_runs])
                engine_lat = [x for _, lat in engine_runs for x in lat]
                echo_lat = [x for _, lat in echo_runs for x in lat]
                ratios[in_flight] = engine.median / bare.median
                for label, stats, lat in (("engine", engine, engine_lat), ("bare echo", bare, echo_lat)):
                    rows.append(
                        [
                            label,
                            str(in_flight),
                            f"{stats.median:,.0f} ({stats.low:,.0f}-{stats.high:,.0f})",
                            f"{_p(lat, 0.5):.2f}",
                            f"{_p(lat, 0.99):.2f}",
                            f"{ratios[in_flight]:.2f}" if label == "engine" else "",
                        ]
                    )
                figures[str(in_flight)] = {
                    "engine_calls_per_s": engine.median,
                    "echo_calls_per_s": bare.median,
                    "engine_p50_ms": _p(engine_lat, 0.5),
                    "engine_p99_ms": _p(engine_lat, 0.99),
                }
        finally:
            server.terminate()
            server.wait(timeout=30)
            echo.kill()
    return Section(
        "gRPC ProcessMessage: the engine (pizza flow, embedded SQLite) vs a bare grpc.aio echo",
        ["server", "in flight", "calls/s (median, min-max of 3)", "p50 ms", "p99 ms", "engine/echo"],
        rows,
        [Target("engine ≥ 50 % of the bare echo at 64 in flight", f"{ratios[64]:.0%}", ratios[64] >= 0.5)],
        notes=[
            f"{calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), distinct conversations, each the "
            "pizza happy path; client, engine and echo in separate processes on 127.0.0.1.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

"""REST ``POST /v2/conversations/{id}/messages`` on the pizza flow vs a bare aiohttp JSON echo.

Three processes, like the gRPC set: ``mcp-engine serve`` (embedded SQLite, auth off), a bare aiohttp app
that parses the same JSON body and answers a reply-shaped JSON document, and the load client (aiohttp,
keep-alive, one connection per request in flight). Calls go to distinct conversations (each the pizza
happy path) with 1, 16 and 64 in flight; every loop is bounded in count and time; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.grpc_turns import SCRIPT, TIME_LIMIT_S, _free_port, _p, _wait_for
from benchmarks.report import Section, Stats, Target

ROOT = Path(__file__).resolve().parent.parent


def _echo_server(port: int) -> None:
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        reply = {"type": "text", "text": f"echo: {body['content']['text']}", "attributes": {}}
        return web.json_response(
            {
                "conversation_id": request.match_info["conversation_id"],
                "current_state": "echo",
                "response": reply,
                "messages": [reply],
                "context_updates": {"slots.size": "large"},
                "actions_performed": ["send_message"],
                "confidence_scores": {"order_pizza": 1.0},
                "processing_time_ms": 0,
                "ab_variant": "",
                "flow_id": "pizza",
                "flow_version": "1.0.0",
            }
        )

    app = web.Application()
    app.router.add_post("/v2/conversations/{conversation_id}/messages", echo)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _client(port: int, in_flight: int, calls: int, queue: Any) -> None:
    import aiohttp

    async def main() -> list[float]:
        latencies: list[float] = []
        stop_at = time.monotonic() + TIME_LIMIT_S
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector) as session:
            per_worker = max(1, calls // in_flight)

            async def worker(w: int) -> None:
                for i in range(per_worker):
                    if time.monotonic() > stop_at:
                        return
                    conversation = f"bench-{os.getpid()}-{w}-{i // len(SCRIPT)}"
                    body = {
                        "tenant_id": "demo",
                        "content": {"type": "text", "text": SCRIPT[i % len(SCRIPT)]},
                        "hints": {"force_flow": "pizza"},
                    }
                    started = time.perf_counter()
                    url = f"http://127.0.0.1:{port}/v2/conversations/{conversation}/messages"
                    async with session.post(url, json=body) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(worker(w) for w in range(in_flight)))
            latencies.append(-(time.perf_counter() - started))
        return latencies

    queue.put(asyncio.run(main()))


def _load(port: int, in_flight: int, calls: int) -> tuple[float, list[float]]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    client = context.Process(target=_client, args=(port, in_flight, calls, queue))
    client.start()
    latencies: list[float] = queue.get(timeout=TIME_LIMIT_S + 30)
    client.join(timeout=10)
    wall = -latencies.pop()
    return len(latencies) / wall, latencies


def run(quick: bool = False) -> Section:
    calls = 160 if quick else 1600
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
            _wait_for(http_port)
            _wait_for(echo_port)
            rows, figures, ratios = [], {}, {}
            for in_flight in (1, 16, 64):
                engine_runs = [_load(http_port, in_flight, calls) for _ in range(3)]
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
                    "ratio": ratios[in_flight],
                }
        finally:
            server.terminate()
            server.wait(timeout=30)
            echo.kill()
    return Section(
        "REST POST /v2/conversations/{id}/messages: the engine (pizza flow, embedded SQLite)"
        " vs a bare aiohttp echo",
        ["server", "in flight", "calls/s (median, min-max of 3)", "p50 ms", "p99 ms", "engine/echo"],
        rows,
        [Target("engine/echo at 64 in flight (no target)", f"{ratios[64]:.0%}", True)],
        notes=[
            f"{calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), distinct conversations,"
            " each the pizza "
            "happy path; aiohttp keep-alive client, engine and echo in separate processes on 127.0.0.1.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

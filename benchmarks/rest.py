"""REST ``POST /v2/conversations/{id}/messages`` on the pizza flow vs a bare aiohttp JSON echo.

Three processes, like the gRPC set: ``mcp-engine serve`` (embedded SQLite, auth off), a bare aiohttp app
that parses the same JSON body and answers a reply-shaped JSON document, and the load client (aiohttp,
keep-alive, one connection per request in flight). Calls go to distinct conversations (each the pizza
happy path) with 1, 16 and 64 in flight; every loop is bounded in count and time; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from benchmarks.load import SCRIPT, TIME_LIMIT_S, against_echo
from benchmarks.report import Section


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


def run(quick: bool = False) -> Section:
    calls = 160 if quick else 1600
    rows, _ratios, figures = against_echo(_echo_server, _client, "http", calls)
    return Section(
        "REST POST /v2/conversations/{id}/messages: the engine (pizza flow, embedded SQLite)"
        " vs a bare aiohttp echo",
        ["server", "in flight", "calls/s (median, min-max of 3)", "p50 ms", "p99 ms", "engine/echo"],
        rows,
        [],
        notes=[
            f"{calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), distinct conversations,"
            " each the pizza "
            "happy path; aiohttp keep-alive client, engine and echo in separate processes on 127.0.0.1.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

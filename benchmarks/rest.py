"""REST ``POST /v2/conversations/{id}/messages`` on the pizza flow, on either store, vs a bare aiohttp echo.

Separate processes, like the gRPC set: ``mcp-engine serve`` on each store (auth off), a bare aiohttp app
that parses the same JSON body and answers a reply-shaped JSON document, and the load client (aiohttp,
keep-alive). Calls go to distinct conversations (each the pizza happy path) with 1, 16 and 64 in flight;
every loop is bounded in count and time; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio

from benchmarks.client import SCRIPT, TIME_LIMIT_S
from benchmarks.load import Plan, engines_against_echo, run_on_serve_loop
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

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v2/conversations/{conversation_id}/messages", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    run_on_serve_loop(main)


def run(quick: bool = False) -> Section:
    plan = Plan.of(quick)
    rows, _ratios, figures = engines_against_echo("http", _echo_server, plan)
    return Section(
        "REST POST /v2/conversations/{id}/messages: the engine (pizza flow) on each store"
        " vs a bare aiohttp echo",
        ["server", "in flight", "calls/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [],
        notes=[
            f"{plan.calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), {plan.repetitions} run(s) per"
            f" row, distinct conversations, each the pizza happy path ({len(SCRIPT)} messages).",
            "aiohttp keep-alive client, engines and echo in separate processes on 127.0.0.1.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

"""gRPC ProcessMessage on the pizza flow, on either store, vs a bare ``grpc.aio`` echo with the same messages.

Separate processes: ``mcp-engine serve`` on the embedded store, another on PostgreSQL + Redis, the bare
echo servicer, and the load client, so the client's CPU is not a server's. Calls go to distinct
conversations (each the pizza happy path) with 1, 16 and 64 in flight; every loop is bounded in count and
time; only 127.0.0.1. Every server runs on the event loop ``serve`` uses (uvloop where installed).
"""

from __future__ import annotations

from typing import Any

import grpc

from benchmarks.client import SCRIPT, TIME_LIMIT_S
from benchmarks.load import Plan, engines_against_echo, run_on_serve_loop
from benchmarks.report import Section, Target
from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc

TARGET = 0.5  # the engine on the embedded store, at 64 in flight, against the bare echo


def reply_like_the_engine(request: Any) -> Any:
    """A ``ProcessMessageResponse`` shaped like a pizza turn's (the same fields filled)."""
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


class Echo(mcp_pb2_grpc.MCPEngineServicer):
    """Answers like the engine, doing nothing: the floor of gRPC itself on this machine."""

    async def ProcessMessage(self, request: Any, context: Any) -> Any:
        return reply_like_the_engine(request)


def serve_grpc(servicer: Any, port: int, opened: Any = None) -> None:
    """Serve ``servicer`` on ``port`` on the loop ``mcp-engine serve`` uses; ``opened``: an async callable
    run first (connecting to stores)."""

    async def main() -> None:
        if opened is not None:
            await opened()
        server = grpc.aio.server()
        mcp_pb2_grpc.add_MCPEngineServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    run_on_serve_loop(main)


def _echo_server(port: int) -> None:
    serve_grpc(Echo(), port)


def run(quick: bool = False) -> Section:
    plan = Plan.of(quick)
    rows, ratios, figures = engines_against_echo("grpc", _echo_server, plan)
    top = plan.levels[-1]
    return Section(
        "gRPC ProcessMessage: the engine (pizza flow) on each store vs a bare grpc.aio echo",
        ["server", "in flight", "calls/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [
            Target(
                f"engine on the embedded store ≥ {TARGET:.0%} of the bare echo at {top} in flight",
                f"{ratios['engine, embedded'][top]:.0%}",
                ratios["engine, embedded"][top] >= TARGET,
            )
        ],
        notes=[
            f"{plan.calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), {plan.repetitions} run(s) per"
            f" row, distinct conversations, each the pizza happy path ({len(SCRIPT)} messages).",
            "Client, engines and echo in separate processes on 127.0.0.1; PostgreSQL + Redis on 127.0.0.1.",
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

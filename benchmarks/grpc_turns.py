"""gRPC ProcessMessage on the pizza flow vs a bare ``grpc.aio`` echo with the same messages.

Three processes: ``mcp-engine serve`` (embedded SQLite), a bare echo servicer, and the load client,
so the client's CPU is not the server's. Calls go to distinct conversations (each the pizza happy path)
with 1, 16 and 64 in flight; every loop is bounded in count and time; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import grpc

from benchmarks.load import SCRIPT, TIME_LIMIT_S, against_echo
from benchmarks.report import Section, Target
from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc


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


def run(quick: bool = False) -> Section:
    calls = 320 if quick else 1600
    rows, ratios, figures = against_echo(_echo_server, _client, "grpc", calls)
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

"""The load client: one process of its own (so its CPU is not the server's) that runs load jobs on request.

One long-lived process serves every run of a benchmark set: spawning a client per run cost a second of
imports each time. A job sends ``calls`` messages with ``in_flight`` of them outstanding, over gRPC
(``ProcessMessage``) or REST (``POST /v2/conversations/{id}/messages``), to one or more servers in turn
(several ``serve`` processes behind no balancer: a conversation's messages land on any of them). Which
conversation each call goes to is ``Job.conversations``: None gives each worker its own conversations, each
the pizza happy path in order; a number N sends the k-th call to conversation ``k % N``. Every loop is
bounded in count and in time (``TIME_LIMIT_S``); only 127.0.0.1. Failed calls are counted by status, not
raised: a benchmark under contention reports them.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.shared import shared

SCRIPT = ("I'd like two large pizzas", "thin crust please", "12 Main Street", "(650) 253-0000", "yes")
TIME_LIMIT_S = 60.0


@dataclass(frozen=True)
class Job:
    protocol: str  # "grpc" or "http"
    ports: tuple[int, ...]
    in_flight: int
    calls: int
    conversations: int | None = None  # None: each worker's own, each the happy path; N: call k -> k % N


@dataclass
class Outcome:
    """What a job measured: per-call latencies (s) of the calls that succeeded, wall time, failures."""

    latencies: list[float]
    wall_s: float
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall_s


Send = Callable[[int, str, str], Awaitable[None]]  # (index into the job's ports, conversation, text)


async def _grpc_sender(ports: tuple[int, ...]) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import grpc

    from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc

    # One connection per entry: a port named twice is two connections (to two workers sharing it, maybe).
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for port in ports]
    for channel in channels:
        await channel.channel_ready()
    stubs = [mcp_pb2_grpc.MCPEngineStub(channel) for channel in channels]

    async def send(slot: int, conversation: str, text: str) -> None:
        request = mcp_pb2.ProcessMessageRequest(
            tenant_id="demo",
            conversation_id=conversation,
            content=mcp_pb2.MessageContent(type="text", text=text),
            hints=mcp_pb2.ProcessingHints(force_flow="pizza"),
        )
        try:
            await stubs[slot].ProcessMessage(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise _Failed(exc.code().name) from None

    async def close() -> None:
        for channel in channels:
            await channel.close()

    return send, close


async def _http_sender(ports: tuple[int, ...], in_flight: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight * len(ports)))

    async def send(slot: int, conversation: str, text: str) -> None:
        body = {
            "tenant_id": "demo",
            "content": {"type": "text", "text": text},
            "hints": {"force_flow": "pizza"},
        }
        url = f"http://127.0.0.1:{ports[slot]}/v2/conversations/{conversation}/messages"
        async with session.post(url, json=body) as response:
            await response.read()
            if response.status != 200:
                raise _Failed(f"HTTP {response.status}")

    return send, session.close


class _Failed(Exception):
    """A call the server refused or failed, named by its status."""


async def run_job(job: Job, run_id: str) -> Outcome:
    if job.protocol == "grpc":
        send, close = await _grpc_sender(job.ports)
    else:
        send, close = await _http_sender(job.ports, job.in_flight)
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    stop_at = time.monotonic() + TIME_LIMIT_S
    per_worker = max(1, job.calls // job.in_flight)
    numbers = itertools.count()

    async def worker(w: int) -> None:
        for i in range(per_worker):
            if time.monotonic() > stop_at:
                return
            k = next(numbers)
            if job.conversations is None:
                conversation, text = f"{run_id}-{w}-{i // len(SCRIPT)}", SCRIPT[i % len(SCRIPT)]
            else:
                conversation = f"{run_id}-{k % job.conversations}"
                text = SCRIPT[(k // job.conversations) % len(SCRIPT)]
            started = time.perf_counter()
            try:
                await send(k % len(job.ports), conversation, text)
            except _Failed as exc:
                failures[str(exc)] += 1
                continue
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(job.in_flight)))
        return Outcome(latencies, time.perf_counter() - started, dict(failures))
    finally:
        await close()


def _serve_jobs(jobs: Any, outcomes: Any) -> None:
    """The client process: runs each job of ``jobs`` (None ends it), puts its ``Outcome`` on ``outcomes``."""
    for n in itertools.count():
        job = jobs.get()
        if job is None:
            return
        outcomes.put(asyncio.run(run_job(job, f"load-{os.getpid()}-{n}")))


class LoadClient:
    """Sends jobs to the client process and waits for their outcomes."""

    def __init__(self, jobs: Any, outcomes: Any) -> None:
        self._jobs, self._outcomes = jobs, outcomes

    def run(self, job: Job) -> Outcome:
        self._jobs.put(job)
        outcome: Outcome = self._outcomes.get(timeout=TIME_LIMIT_S + 60)
        return outcome


@contextmanager
def load_client() -> Iterator[LoadClient]:
    """A load client process for the block's jobs (the run's one, inside ``shared.sharing()``)."""
    with shared("load client", _load_client) as client:
        yield client


@contextmanager
def _load_client() -> Iterator[LoadClient]:
    context = multiprocessing.get_context("spawn")
    jobs, outcomes = context.Queue(), context.Queue()
    process = context.Process(target=_serve_jobs, args=(jobs, outcomes), daemon=True)
    process.start()
    try:
        yield LoadClient(jobs, outcomes)
    finally:
        jobs.put(None)
        process.join(timeout=10)
        if process.is_alive():
            process.kill()

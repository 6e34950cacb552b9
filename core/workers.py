"""``mcp-engine serve --workers N``: N engine processes sharing the REST and gRPC ports, and their supervisor.

One Python process runs one event loop on one core; a turn is CPU-bound Python, so more cores need more
processes. Each worker is a whole ``serve`` (its own loop, store connections, compiled-flow cache and
limiter) whose sockets are bound with ``SO_REUSEPORT``, so the kernel spreads new connections over them
and clients see one address. The supervisor publishes ``--flows`` once before any worker starts (so N
workers do not race to store the same versions), then starts the workers, restarts one that dies, and
on SIGTERM/SIGINT stops them all (each finishes its turns in flight, as ``serve`` does).

Correctness across workers is the store's: on PostgreSQL + Redis the Redis lock orders a conversation's
turns whichever worker takes them; on the embedded store (SQLite in WAL mode) every worker opens the same
file, and the compare-and-set on the conversation's version keeps a conversation's data right, but two
messages of one conversation arriving at once on two workers make one of them fail with a conflict
instead of waiting its turn (docs/operators.md).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from mcp_engine.config import EngineSettings

log = logging.getLogger("mcp_engine.workers")
STOP_GRACE_S = 15.0  # a worker's own graceful stop takes at most serve.GRACE_S (10 s) plus closing
POLL_S = 0.5


def worker_count(value: str) -> int:
    """``--workers``: a positive number, or ``auto`` (the machine's core count)."""
    if value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--workers must be a positive number or 'auto', not {value!r}")
    return count


@dataclass
class Worker:
    index: int
    process: BaseProcess
    serving: bool = False  # one that dies before it served is a broken start: stop, not a restart loop


class Supervisor:
    """Starts ``count`` workers, restarts the ones that die, stops them all on SIGTERM/SIGINT."""

    def __init__(
        self,
        settings: EngineSettings,
        host: str,
        count: int,
        flows_dir: Path | None,
        default_flow: str | None,
        log_format: str | None,
    ) -> None:
        self.settings = _fixed_ports(settings, host)
        self.host, self.count, self.flows_dir, self.default_flow = host, count, flows_dir, default_flow
        self.log_format = log_format
        self._context = multiprocessing.get_context("spawn")
        self._ready = self._context.Queue()
        self._stopping = False

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (0) or until a worker cannot start (1)."""
        if self.flows_dir is not None:
            asyncio.run(_publish(self.settings, self.flows_dir, self.default_flow))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        workers = [self._start(i) for i in range(self.count)]
        status = self._watch(workers)
        self._stop_all(workers)
        return status

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, index: int) -> Worker:
        process = self._context.Process(
            target=_work,
            args=(
                self.settings,
                self.host,
                self.flows_dir,
                self.default_flow,
                self.log_format,
                index,
                self._ready,
            ),
            name=f"mcp-engine-worker-{index}",
        )
        process.start()
        return Worker(index, process)

    def _watch(self, workers: list[Worker]) -> int:
        while not self._stopping:
            wait([w.process.sentinel for w in workers], POLL_S)
            while not self._ready.empty():
                index, pid = self._ready.get()
                workers[index].serving = True
                log.info("worker %d (pid %d) serving", index, pid)
                if all(w.serving for w in workers):
                    log.info(
                        "%d workers serving REST on http://%s:%d and gRPC on %s:%d",
                        self.count,
                        self.host,
                        self.settings.http_port,
                        self.host,
                        self.settings.grpc_port,
                    )
            for worker in workers:
                code = worker.process.exitcode
                if code is None or self._stopping:
                    continue
                if not worker.serving:
                    log.error(
                        "worker %d exited with status %s before it served: stopping", worker.index, code
                    )
                    return 1
                log.error(
                    "worker %d (pid %s) exited with status %s: starting another",
                    worker.index,
                    worker.process.pid,
                    code,
                )
                workers[worker.index] = self._start(worker.index)
        return 0

    def _stop_all(self, workers: list[Worker]) -> None:
        log.info("stopping %d workers", len(workers))
        for worker in workers:
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker %d did not stop within %.0f s: killed", worker.index, STOP_GRACE_S)
                worker.process.kill()
                worker.process.join(5)
        log.info("stopped")


def _fixed_ports(settings: EngineSettings, host: str) -> EngineSettings:
    """Port 0 means "any free port": chosen here once, since every worker must bind the same one."""
    ports = {name: getattr(settings, name) or _free_port(host) for name in ("http_port", "grpc_port")}
    return settings.model_copy(update=ports)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def _publish(settings: EngineSettings, flows_dir: Path, default_flow: str | None) -> None:
    from mcp_engine.runtime.execution import ExecutionService
    from mcp_engine.serve import load_flows
    from mcp_engine.store.factory import open_store

    engine = ExecutionService(open_store(settings), settings=settings)
    await engine.start()
    try:
        await load_flows(engine, flows_dir, default_flow)
    finally:
        await engine.close()


def _stop_with_supervisor() -> None:
    """A worker whose supervisor died (even by SIGKILL) stops itself gracefully: no orphan keeps the port."""
    supervisor = multiprocessing.parent_process()
    if supervisor is not None:
        wait([supervisor.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)


def _work(
    settings: EngineSettings,
    host: str,
    flows_dir: Path | None,
    default_flow: str | None,
    log_format: str | None,
    index: int,
    ready: Any,
) -> None:
    """A worker process: ``serve`` on the shared ports. It publishes ``--flows`` again (stored already by
    the supervisor: a no-op there) so that it compiles them before taking traffic."""
    from mcp_engine.logs import configure_logging
    from mcp_engine.serve import run, serve

    def serving() -> None:
        ready.put((index, os.getpid()))

    configure_logging(log_format, service=settings.service_name)
    threading.Thread(target=_stop_with_supervisor, name="supervisor-watch", daemon=True).start()
    # Ctrl-C reaches the whole process group: a worker still starting leaves it to the supervisor (which
    # sends SIGTERM) instead of dying with a traceback; once serving, serve's own handler stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(run(settings, serve(settings, host, flows_dir, default_flow, True, serving)))

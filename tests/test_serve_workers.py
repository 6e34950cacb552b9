"""``mcp-engine serve --workers 2`` on each store: two processes listen on the one REST and the one gRPC
port, a conversation whose messages arrive on fresh connections (so the kernel deals them to either
worker) over both protocols ends where one process would have taken it, a killed worker is replaced, and
SIGTERM stops the supervisor and every worker."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from mcp_engine.api.grpc import mcp_pb2, mcp_pb2_grpc
from mcp_engine.workers import worker_count
from tests.production_kit import store_env
from tests.serve_kit import FLOWS_DIR, MCP_ENGINE, Served, serve

pytestmark = pytest.mark.slow

SCRIPT = ("I'd like two large pizzas", "thin crust please", "12 Main Street", "(650) 253-0000", "yes")
CONVERSATIONS = 4


@pytest.fixture(params=["embedded", "production"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    async with store_env(request.param, "workers") as env:
        yield env


@pytest.fixture
def workers(tmp_path: Path, shared: dict[str, str]) -> Iterator[Served]:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(FLOWS_DIR / "pizza.json", flows / "pizza.json")
    with serve(tmp_path, "--workers", "2", "--flows", str(flows), env=shared) as served:
        served.wait_for("2 workers serving")
        yield served
        pids = worker_pids(served)
    # serve_kit kills the supervisor (SIGKILL) if the test left it running: its workers stop themselves
    wait_until(lambda: all(gone(pid) for pid in pids))


def gone(pid: int) -> bool:
    """The process ended (a zombie waiting for whoever reaps orphans counts as ended)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def worker_pids(served: Served) -> set[int]:
    """Each worker's pid, from the supervisor's "worker N (pid P) serving" lines (the latest per N)."""
    pids: dict[str, int] = {}
    for found in re.finditer(r"worker (\d+) \(pid (\d+)\) serving", served.output()):
        pids[found[1]] = int(found[2])
    return set(pids.values())


def listeners(port: int, pids: set[int]) -> set[int]:
    """Which of ``pids`` hold a socket listening on 127.0.0.1:``port`` (from /proc: no tool needed)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    holding: set[int] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                holding.add(pid)
    return holding


async def converse(served: Served, conversation: str) -> dict[str, object]:
    """The pizza happy path, every message on a new connection, REST and gRPC in turn; the last reply."""
    last: dict[str, object] = {}
    for n, text in enumerate(SCRIPT):
        if n % 2 == 0:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.post(
                    f"{served.base}/v2/conversations/{conversation}/messages",
                    json={"content": {"type": "text", "text": text}, "user_id": "u1"},
                    headers={"X-Tenant-ID": "demo"},
                ) as response,
            ):
                assert response.status == 200, await response.text()
                last = await response.json()
        else:
            async with grpc.aio.insecure_channel(served.target) as channel:
                reply = await mcp_pb2_grpc.MCPEngineStub(channel).ProcessMessage(
                    mcp_pb2.ProcessMessageRequest(
                        tenant_id="demo",
                        conversation_id=conversation,
                        user_id="u1",
                        content=mcp_pb2.MessageContent(type="text", text=text),
                    ),
                    timeout=20,
                )
                last = {"current_state": reply.current_state}
    return last


async def slots(served: Served, conversation: str) -> object:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{served.base}/v2/conversations/{conversation}", headers={"X-Tenant-ID": "demo"}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return (await response.json())["context"]["slots"]


def wait_until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


async def test_two_workers_share_both_ports_and_every_conversation(workers: Served) -> None:
    pids = worker_pids(workers)
    assert len(pids) == 2, workers.output()
    assert listeners(workers.http_port, pids) == pids
    assert listeners(workers.grpc_port, pids) == pids
    finals = [await converse(workers, f"w{c}") for c in range(CONVERSATIONS)]
    expected = (await converse_alone(workers))["current_state"]
    assert {str(f["current_state"]) for f in finals} == {expected}
    expected_slots = await slots(workers, "alone")
    assert expected_slots
    for c in range(CONVERSATIONS):
        assert await slots(workers, f"w{c}") == expected_slots


async def converse_alone(served: Served) -> dict[str, object]:
    """The same script on one keep-alive connection (one worker): what the conversations must match."""
    last: dict[str, object] = {}
    async with aiohttp.ClientSession() as http:
        for text in SCRIPT:
            async with http.post(
                f"{served.base}/v2/conversations/alone/messages",
                json={"content": {"type": "text", "text": text}, "user_id": "u1"},
                headers={"X-Tenant-ID": "demo"},
            ) as response:
                assert response.status == 200, await response.text()
                last = await response.json()
    return last


async def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(workers: Served) -> None:
    before = worker_pids(workers)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    workers.wait_for("exited with status -9: starting another")
    wait_until(lambda: len(worker_pids(workers) - {victim}) == 2)
    after = worker_pids(workers)
    wait_until(
        lambda: listeners(workers.grpc_port, after) == after and listeners(workers.http_port, after) == after
    )
    expected = (await converse_alone(workers))["current_state"]
    assert (await converse(workers, "after"))["current_state"] == expected
    assert workers.terminate() == 0
    assert "stopping 2 workers" in workers.output()
    for pid in after:
        assert gone(pid)


def serve_once(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``mcp-engine serve *args`` to its end (one that cannot start), its output captured."""
    command, environment = [str(MCP_ENGINE), "serve", *args], {**os.environ, **env}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)


def test_workers_must_be_a_positive_number_or_auto() -> None:
    assert worker_count("auto") == (os.cpu_count() or 1)
    assert worker_count("3") == 3
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match="positive number or 'auto'"):
            worker_count(bad)
    result = serve_once("--workers", "none")
    assert result.returncode == 2
    assert "--workers must be a positive number or 'auto', not 'none'" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_that_cannot_start_stop_the_supervisor(tmp_path: Path) -> None:
    with socket.socket() as taken:  # a listener without SO_REUSEPORT: no worker can bind its port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_once("--workers", "2", HTTP_PORT=str(port), MCP_SQLITE_PATH=str(tmp_path / "w.db"))
    assert result.returncode == 1, result.stderr
    assert "before it served: stopping" in result.stderr

"""Serving in tests: a flows folder pointing at the example flows' bank and helpdesk (``ExampleBackend``),
and ``mcp-engine serve`` as a real subprocess on free 127.0.0.1 ports (stderr collected line by line)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_engine.api.grpc import mcp_pb2
from mcp_engine.testing import granted_environment
from tests.engine_fixtures import ENV, ExampleBackend

FLOWS_DIR = Path(__file__).parent.parent / "examples" / "flows"
MCP_ENGINE = Path(sys.executable).parent / "mcp-engine"
START_TIMEOUT_S = 30.0


def flows_folder(target: Path, backend: ExampleBackend) -> Path:
    """A copy of ``examples/flows`` whose integrations call ``backend``."""
    target.mkdir(parents=True, exist_ok=True)
    for path in FLOWS_DIR.glob("*.json"):
        shutil.copy(path, target / path.name)
    for name, integration, suffix in (
        ("bank", "core_banking", "/api/v1"),
        ("support", "helpdesk", "/helpdesk"),
    ):
        path = target / f"{name}.json"
        document = json.loads(path.read_text())
        document["integrations"][integration]["base_url"] = backend.base + suffix
        path.write_text(json.dumps(document))
    return target


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int
    db: Path
    lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from serve (exit {self.process.poll()}):\n{self.output()}")
            time.sleep(0.05)

    def terminate(self, timeout_s: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)


@contextmanager
def serve(
    tmp: Path, *args: str, env: dict[str, str] | None = None, command: Sequence[str] = (str(MCP_ENGINE),)
) -> Iterator[Served]:
    """``mcp-engine serve *args`` on free ports and a fresh SQLite file; yields once it is serving.
    ``command`` runs the engine (another environment's ``python -m mcp_engine``)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_URI", "REDIS_URL", "MCP_AUTH")}
    served_env = {"HTTP_PORT": str(free_port()), "GRPC_PORT": str(free_port())}
    environment |= (
        served_env
        | {"MCP_SQLITE_PATH": str(tmp / "serve.db"), "MCP_AUTH": "off"}
        | ENV
        | granted_environment(list(ENV))
        | (env or {})
    )
    process = subprocess.Popen(
        [*command, "serve", *args],
        env=environment,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process, int(served_env["HTTP_PORT"]), int(served_env["GRPC_PORT"]), tmp / "serve.db")
    assert process.stderr is not None
    stderr = process.stderr
    reader = threading.Thread(target=lambda: served.lines.extend(iter(stderr.readline, "")), daemon=True)
    reader.start()
    try:
        served.wait_for("serving REST on")
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)


def grpc_reply(reply: mcp_pb2.ProcessMessageResponse) -> dict[str, Any]:
    """A gRPC reply as the REST reply dict (context updates JSON-decoded), for field-by-field comparison."""
    messages = [{"type": m.type, "text": m.text, "attributes": dict(m.attributes)} for m in reply.messages]
    return {
        "conversation_id": reply.conversation_id,
        "current_state": reply.current_state,
        "response": {
            "type": reply.response.type,
            "text": reply.response.text,
            "attributes": dict(reply.response.attributes),
        },
        "messages": messages,
        "context_updates": {k: json.loads(v) for k, v in reply.context_updates.items()},
        "actions_performed": list(reply.actions_performed),
        "confidence_scores": dict(reply.confidence_scores),
        "processing_time_ms": reply.processing_time_ms,
        "ab_variant": reply.ab_variant,
        "flow_id": reply.flow_id,
        "flow_version": reply.flow_version,
    }

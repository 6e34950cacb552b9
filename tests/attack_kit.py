"""Hostile-tenant attacks on a real served engine (issue 17): ``mcp-engine serve`` on loopback with two
tenants, the attack run from tenant A while tenant B keeps taking turns, B's latency measured meanwhile.

Used by the attack regression tests (``tests/test_attacks.py``) and ``python -m benchmarks attacks``. The
tests assert outcomes (status codes, error codes, counts), never seconds; the benchmark prints the seconds.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.serve_kit import Served, serve

ATTACKER, BYSTANDER = "tenant-a", "tenant-b"
REQUEST_TIMEOUT_S = 180.0
PROBE_LIMIT = 2_000  # bystander turns per attack, at most
PROBE_PAUSE_S = 0.02
T = TypeVar("T")


def flow(tenant: str, flow_id: str, initial: str, states: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "flow_id": flow_id,
        "tenant_id": tenant,
        "name": flow_id,
        "version": "1.0.0",
        "initial_state": initial,
        "states": states,
        **extra,
    }


def end(text: str, **fields: Any) -> dict[str, Any]:
    return {"type": "end", "config": {"response_templates": {"default": text}}, "transitions": [], **fields}


PONG = flow(BYSTANDER, "pong", "pong", {"pong": end("pong")})


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def code(self) -> str | None:
        """The error code of an error reply."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None


@dataclass
class Latency:
    """Tenant B's turn latencies (seconds) while the attack ran, and how many of B's turns failed."""

    samples: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def max(self) -> float:
        return max(self.samples, default=0.0)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0


@dataclass
class Engine:
    served: Served

    def request(
        self, method: str, path: str, tenant: str, body: Any = None, raw: bytes | None = None
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.served.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "X-Tenant-ID": tenant},
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        try:
            return Reply(status, json.loads(text) if text else None)
        except ValueError:
            return Reply(status, text.decode(errors="replace"))

    def publish(self, document: dict[str, Any]) -> Reply:
        """Create and publish ``document``; the create reply when it is refused."""
        tenant = document["tenant_id"]
        created = self.request("POST", "/v2/flows", tenant, document)
        if created.status not in (200, 201):
            return created
        return self.request(
            "POST", f"/v2/flows/{document['flow_id']}/versions/{document['version']}/publish", tenant
        )

    def send(self, tenant: str, conversation: str, text: str, flow_id: str) -> Reply:
        body = {"content": {"type": "text", "text": text}, "hints": {"force_flow": flow_id}}
        return self.request("POST", f"/v2/conversations/{conversation}/messages", tenant, body)

    def state(self, tenant: str, conversation: str) -> Reply:
        return self.request("GET", f"/v2/conversations/{conversation}", tenant)

    def errors(self, tenant: str, conversation: str) -> list[str]:
        """The kinds of the error events in the conversation's history, oldest first."""
        reply = self.request("GET", f"/v2/conversations/{conversation}/history?limit=500", tenant)
        events = reply.body["events"] if isinstance(reply.body, dict) else []
        return [e["data"].get("kind") for e in reversed(events) if e["type"] == "error"]

    def peak_rss_mb(self) -> float:
        """The server's peak resident set since the last ``reset_peak`` (Linux)."""
        for line in Path(f"/proc/{self.served.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def reset_peak(self) -> None:
        Path(f"/proc/{self.served.process.pid}/clear_refs").write_text("5")

    def during(self, attack: Callable[[], T]) -> tuple[T, Latency]:
        """Run ``attack`` while tenant B takes turns (at most ``PROBE_LIMIT``); B's latencies with it."""
        latency = Latency()
        done = threading.Event()

        def probe() -> None:
            for turn in range(PROBE_LIMIT):
                started = time.perf_counter()
                reply = self.send(BYSTANDER, f"probe-{turn}", "ping", "pong")
                latency.samples.append(time.perf_counter() - started)
                latency.failures += reply.status != 200
                if done.wait(PROBE_PAUSE_S):
                    return

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        time.sleep(PROBE_PAUSE_S * 5)  # B is mid-conversation when the attack starts
        try:
            result = attack()
        finally:
            done.set()
            prober.join(REQUEST_TIMEOUT_S)
        return result, latency


@contextmanager
def attack_engine(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Engine]:
    """A served engine (auth off: tenants named by ``X-Tenant-ID``) with tenant B's ``pong`` flow;
    ``args``: more ``serve`` arguments (``--flows DIR``)."""
    with serve(tmp, *args, env=env) as served:
        engine = Engine(served)
        published = engine.publish(PONG)
        assert published.status == 200, published
        yield engine


# --- the attacks (issue 17's findings 3-7), sized by their argument --------------------------------


def regex_flow(pattern: str = "(a+)+$") -> dict[str, Any]:
    """Finding 3: an intent pattern with catastrophic backtracking under Python's ``re``."""
    return flow(
        ATTACKER,
        "regex",
        "ask",
        {
            "ask": {
                "type": "intent",
                "config": {"intent_patterns": ["evil"]},
                "transitions": [
                    {"condition": "intent_match", "condition_value": "evil", "target_state": "done"}
                ],
            },
            "done": end("matched"),
        },
        intents={"evil": {"examples": [], "patterns": [pattern]}},
    )


def matches_flow(count: int) -> dict[str, Any]:
    """Finding 3: ``count`` ``matches`` in one expression (each a slow search under a backtracking engine),
    evaluated when the message arrives."""
    expression = " or ".join(f'event.text matches "(a|aa)+c{{{i}}}$"' for i in range(count))
    return flow(
        ATTACKER,
        "matches",
        "check",
        {
            "check": {
                "type": "wait",
                "config": {},
                "transitions": [{"condition": "expression", "expression": expression, "target_state": "yes"}],
            },
            "yes": end("yes"),
        },
    )


def evil_text(length: int) -> str:
    return "a" * length + "!"


def string_template(doublings: int) -> str:
    """Finding 4: a string doubled in a loop (``~`` concatenation into a namespace)."""
    return (
        "{% set ns = namespace(s='ab') %}{% for i in range(" + str(doublings) + ") %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"
    )


def integer_template(squarings: int) -> str:
    """Finding 4: an integer squared in a loop (``*``, which the exponent bound does not see)."""
    return (
        "{% set ns = namespace(x=3) %}{% for i in range(" + str(squarings) + ") %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 5 }}"
    )


def template_flow(template: str, flow_id: str = "template") -> dict[str, Any]:
    return flow(ATTACKER, flow_id, "say", {"say": end(template)})


def wide_flow(transitions: int) -> dict[str, Any]:
    """Finding 5: one state with ``transitions`` transitions of one priority, any two of which can hold."""
    hub = [
        {"condition": "expression", "expression": f"variables.n > {i}", "target_state": "done", "priority": 1}
        for i in range(transitions)
    ]
    return flow(
        ATTACKER,
        "wide",
        "hub",
        {"hub": {"type": "wait", "config": {}, "transitions": hub}, "done": end("done")},
    )


def growing_flow(variables: int) -> dict[str, Any]:
    """Finding 6: every turn stores the message in ``variables`` variables, so the context grows fast."""
    actions = [
        {"type": "set_variable", "name": f"v{i}", "expression": "event.text"} for i in range(variables)
    ]
    return flow(
        ATTACKER,
        "grow",
        "listen",
        {
            "listen": {
                "type": "wait",
                "config": {},
                "transitions": [
                    {"condition": "any_input", "target_state": "listen", "actions": actions},
                ],
            }
        },
        settings={"max_message_chars": 100_000},
    )


def slow_chain_flow(states: int) -> dict[str, Any]:
    """Finding 3 (the deadline): "go" runs a chain of ``states`` states, each rendering a template that
    loops as long as a render may (``MAX_RENDER_MS``): together longer than the turn's deadline."""
    heavy = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}slow"
    chain: dict[str, Any] = {
        f"s{i}": {
            "type": "condition",
            "config": {},
            "entry_actions": [{"type": "send_message", "text": heavy}],
            "transitions": [
                {
                    "condition": "expression",
                    "expression": "true",
                    "target_state": f"s{i + 1}" if i + 1 < states else "listen",
                }
            ],
        }
        for i in range(states)
    }
    listen = {
        "type": "wait",
        "config": {},
        "transitions": [
            {"condition": "expression", "expression": 'event.text == "go"', "target_state": "s0"}
        ],
    }
    return flow(
        ATTACKER,
        "slow",
        "listen",
        {"listen": listen, **chain},
        settings={"max_steps": states + 5},
        global_handlers={"no_match": {"response": "say go"}},
    )


def yaml_bomb(levels: int) -> str:
    """Finding 7: "billion laughs", ``9 ** levels`` strings from a few hundred bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ",".join(f"*{previous}" for _ in range(9)) + "]")
    return "\n".join(lines) + "\n"

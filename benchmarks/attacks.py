"""Issue 17's hostile-tenant attacks on a served engine: wall time, the server's peak RSS and the second
tenant's turn latency (max and median) while the attack runs. Each attack gets a fresh ``mcp-engine serve``
(``tests/attack_kit.py``); the YAML bomb runs ``mcp-engine validate`` as a subprocess."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.report import Section
from tests import attack_kit as kit
from tests.serve_kit import MCP_ENGINE

Attack = Callable[[kit.Engine], str]


def _turn(document: dict[str, object], text: str) -> Attack:
    def attack(engine: kit.Engine) -> str:
        published = engine.publish(document)
        if published.status != 200:
            return f"publish {published.status} {published.code}"
        reply = engine.send(kit.ATTACKER, "attack", text, str(document["flow_id"]))
        return f"turn {reply.status} {reply.code or ''}".strip()

    return attack


def _turns(document: dict[str, object], text: str, count: int) -> Attack:
    def attack(engine: kit.Engine) -> str:
        published = engine.publish(document)
        if published.status != 200:
            return f"publish {published.status} {published.code}"
        statuses = [engine.send(kit.ATTACKER, "attack", text, str(document["flow_id"])) for _ in range(count)]
        size = len(str(engine.state(kit.ATTACKER, "attack").body))
        return " ".join(f"{r.status}{'/' + r.code if r.code else ''}" for r in statuses) + f", {size:,} B"

    return attack


def _validate(transitions: int) -> Attack:
    def attack(engine: kit.Engine) -> str:
        reply = engine.request("POST", "/v2/flows/validate", kit.ATTACKER, kit.wide_flow(transitions))
        problems = len(reply.body.get("problems", [])) if isinstance(reply.body, dict) else 0
        return f"validate {reply.status} {reply.code or ''} {problems:,} problems".replace("  ", " ")

    return attack


def attacks(quick: bool) -> dict[str, Attack]:
    return {
        "intent pattern (a+)+$, 25 chars": _turn(kit.regex_flow(), kit.evil_text(25)),
        "60 matches in one expression": _turn(kit.matches_flow(60), kit.evil_text(30)),
        "template: string doubled 27 times": _turn(kit.template_flow(kit.string_template(27)), "go"),
        "template: int squared 22 times": _turn(kit.template_flow(kit.integer_template(22)), "go"),
        f"validate {500 if quick else 1500} transitions on a state": _validate(500 if quick else 1500),
        "context: 3 turns x 200 x 60 KB variables": _turns(kit.growing_flow(200), "x" * 60_000, 3),
    }


def _served(name: str, attack: Attack) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch, kit.attack_engine(Path(scratch)) as engine:
        engine.reset_peak()
        started = time.perf_counter()
        outcome, latency = engine.during(lambda: attack(engine))
        wall = time.perf_counter() - started
        return [
            name,
            outcome,
            f"{wall:.2f} s",
            f"{engine.peak_rss_mb():.0f} MB",
            f"{latency.max * 1e3:.0f} ms",
            f"{latency.median * 1e3:.0f} ms",
            str(len(latency.samples)),
        ]


def _yaml_bomb(levels: int) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bomb.yaml"
        path.write_text(kit.yaml_bomb(levels))
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(MCP_ENGINE), "validate", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        assert process.stderr is not None
        assert process.stdout is not None
        tail = (process.stdout.read() + process.stderr.read()).decode(errors="replace").strip().splitlines()
        exit_code = os.waitstatus_to_exitcode(status)
        last = tail[-1][:60] if tail else ""
        return [
            f"YAML bomb, {len(path.read_bytes())} B, 9^{levels} (CLI validate)",
            f"exit {exit_code}: {last}",
            f"{wall:.2f} s",
            f"{usage.ru_maxrss / 1024:.0f} MB",
            "n/a",
            "n/a",
            "0",
        ]


def run(quick: bool = False) -> Section:
    rows = [_served(name, attack) for name, attack in attacks(quick).items()]
    rows.append(_yaml_bomb(6 if quick else 7))
    return Section(
        "Hostile-tenant attacks: cost to the engine and to a second tenant",
        ["attack (tenant A)", "outcome", "wall", "server peak RSS", "B max", "B median", "B turns"],
        rows,
        [],
        notes=[
            "Each attack on a fresh `mcp-engine serve` (embedded store, auth off, tenants by X-Tenant-ID);",
            "tenant B sends one turn every 20 ms during the attack (B max/median: its turn latency).",
            "Peak RSS: the server's VmHWM, reset before the attack; for the CLI, the process's ru_maxrss.",
        ],
    )

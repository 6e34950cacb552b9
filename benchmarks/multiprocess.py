"""Several ``serve`` processes on one PostgreSQL + Redis: does throughput follow the process count, and does
it hold up when every message fights for the same few conversations?

1, 2 and 4 ``mcp-engine serve`` processes share one schema and key prefix; the load client sends each call
to the next process in turn (no balancer, no affinity: a conversation's messages land on any of them, and
the Redis lock orders them). Then, on the largest process count, the same number of calls either all on
10 hot conversations (about 6 messages waiting per conversation at 64 in flight) or spread over 10,000.
On 2 cores that also run the client, PostgreSQL and Redis, the point is that throughput scales to the core
count and does not collapse from lock contention, not a linear speed-up. Where the CPU goes is read from
/proc around each run: the engine processes', PostgreSQL's and Redis's CPU per call, and the idle share of
the machine (none left means more processes can only share the same cores).
"""

from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from pathlib import Path

from benchmarks.client import SCRIPT, TIME_LIMIT_S, Job, LoadClient, load_client
from benchmarks.load import Run, compare, served_engines
from benchmarks.report import Section, Target

IN_FLIGHT = 64
HOT, SPREAD = 10, 10_000
TICK = os.sysconf("SC_CLK_TCK")
PARTS = {"engine": "mcp-engine serve", "PostgreSQL": "postgres: ", "Redis": "redis-server"}


def _cpu_seconds(pattern: str) -> float:
    """User + system CPU of every process whose command line holds ``pattern``."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in found:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _idle_seconds() -> float:
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[4]) / TICK


class Runs:
    """The runs of each row, with failures and where the CPU went, summed over repetitions."""

    def __init__(self, client: LoadClient, repetitions: int) -> None:
        self.client, self.repetitions = client, repetitions
        self.runs: dict[str, list[Run]] = {}
        self.failures: dict[str, int] = {}
        self.cpu: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def measure(self, label: str, job: Job) -> None:
        self.runs[label] = []
        cpu = self.cpu[label]
        for _ in range(self.repetitions):
            before = {part: _cpu_seconds(pattern) for part, pattern in PARTS.items()}
            idle = _idle_seconds()
            outcome = self.client.run(job)
            for part, pattern in PARTS.items():
                cpu[part] += _cpu_seconds(pattern) - before[part]
            cpu["idle"] += _idle_seconds() - idle
            cpu["wall"] += outcome.wall_s
            cpu["calls"] += len(outcome.latencies)
            self.runs[label].append((outcome.rate, outcome.latencies))
            for status, count in outcome.failures.items():
                self.failures[f"{label}: {status}"] = self.failures.get(f"{label}: {status}", 0) + count

    def cpu_note(self, label: str) -> str:
        cpu = self.cpu[label]
        calls = max(cpu["calls"], 1)
        per_call = ", ".join(f"{part} {cpu[part] / calls * 1e3:.2f}" for part in PARTS)
        idle = cpu["idle"] / (cpu["wall"] * (os.cpu_count() or 1))
        return f"{label}: CPU ms per call {per_call}; machine idle {idle:.0%}"


def run(quick: bool = False) -> Section:
    # --quick (the harness works): 1 process, the run's shared production engine; the process rows are
    # the full run's.
    processes = (1,) if quick else (1, 2, 4)
    repetitions, calls, in_flight = (1, 80, 16) if quick else (3, 1_000, IN_FLIGHT)
    with load_client() as client:
        measured = Runs(client, repetitions)
        for count in processes:
            with served_engines("production", count) as served:
                label = f"{count} process{'es' if count > 1 else ''}"
                measured.measure(label, Job("grpc", served.grpc_ports, in_flight, calls))
                if count == processes[-1]:
                    for name, conversations in (
                        (f"{HOT} hot conversations", HOT),
                        (f"{SPREAD:,} spread", SPREAD),
                    ):
                        job = Job("grpc", served.grpc_ports, in_flight, calls, conversations)
                        measured.measure(f"{label}, {name}", job)
    runs, failures = measured.runs, measured.failures
    single, cores = "1 process", list(runs)[1]
    hot, spread = list(runs)[-2:]
    baselines = dict.fromkeys(list(runs)[1 : len(processes)], single) | {hot: spread}
    rows, ratios, figures = compare(in_flight, runs, baselines)
    scaled = []  # the core count against 1 process: not in --quick, which has 1 process only
    if len(processes) > 1:
        scaled.append(
            Target(
                f"{cores} (the core count) ≥ 1.0x of 1 process", f"{ratios[cores]:.2f}x", ratios[cores] >= 1.0
            )
        )
    return Section(
        "Multi-process: serve processes on one PostgreSQL + Redis (gRPC, production store)",
        ["processes / traffic", "in flight", "calls/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [
            *scaled,
            Target(
                f"{HOT} hot conversations keep ≥ 50 % of the spread throughput (no collapse)",
                f"{ratios[hot]:.0%}",
                ratios[hot] >= 0.5,
            ),
        ],
        notes=[
            f"{calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), {repetitions} run(s) per row, each"
            " call to the next process in turn.",
            f"Process rows: distinct conversations, each the pizza happy path ({len(SCRIPT)} messages).",
            "Hot/spread: the k-th call goes to conversation k mod N, the script's messages in turn.",
            "Failed calls (counted, not in the rates): "
            + (", ".join(f"{k} {v}" for k, v in failures.items()) or "none"),
            *(measured.cpu_note(label) for label in runs),
        ],
        figures={**figures, "failures": failures, "cpu_seconds": measured.cpu},
    )


if __name__ == "__main__":
    print(run().markdown())

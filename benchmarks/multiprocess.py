"""Several ``serve`` processes on one PostgreSQL + Redis: does throughput follow the process count, and does
it hold up when every message fights for the same few conversations?

1, 2 and 4 ``mcp-engine serve`` processes share one schema and key prefix; the load client sends each call
to the next process in turn (no balancer, no affinity: a conversation's messages land on any of them, and
the Redis lock orders them). Then, on the largest process count, the same number of calls either all on
10 hot conversations (about 6 messages waiting per conversation at 64 in flight) or spread over 10,000.
On 2 cores that also run the client, PostgreSQL and Redis, the point is that throughput scales to the core
count and does not collapse from lock contention, not a linear speed-up.
"""

from __future__ import annotations

from benchmarks.client import SCRIPT, TIME_LIMIT_S, Job, LoadClient, load_client
from benchmarks.load import Run, compare, served_engines
from benchmarks.report import Section, Target

IN_FLIGHT = 64
HOT, SPREAD = 10, 10_000


def _runs(client: LoadClient, job: Job, repetitions: int, failures: dict[str, int], label: str) -> list[Run]:
    runs = []
    for _ in range(repetitions):
        outcome = client.run(job)
        runs.append((outcome.rate, outcome.latencies))
        for status, count in outcome.failures.items():
            failures[f"{label}: {status}"] = failures.get(f"{label}: {status}", 0) + count
    return runs


def run(quick: bool = False) -> Section:
    processes = (1, 2) if quick else (1, 2, 4)
    repetitions, calls, in_flight = (1, 160, 16) if quick else (3, 1_600, IN_FLIGHT)
    runs: dict[str, list[Run]] = {}
    failures: dict[str, int] = {}
    with load_client() as client:
        for count in processes:
            with served_engines("production", count) as served:
                label = f"{count} process{'es' if count > 1 else ''}"
                job = Job("grpc", served.grpc_ports, in_flight, calls)
                runs[label] = _runs(client, job, repetitions, failures, label)
                if count == processes[-1]:
                    for name, conversations in (
                        (f"{HOT} hot conversations", HOT),
                        (f"{SPREAD:,} spread", SPREAD),
                    ):
                        job = Job("grpc", served.grpc_ports, in_flight, calls, conversations)
                        runs[f"{label}, {name}"] = _runs(client, job, repetitions, failures, name)
    single, widest = "1 process", list(runs)[len(processes) - 1]
    hot, spread = list(runs)[-2:]
    baselines = dict.fromkeys(list(runs)[1 : len(processes)], single) | {hot: spread}
    rows, ratios, figures = compare(in_flight, runs, baselines)
    return Section(
        "Multi-process: serve processes on one PostgreSQL + Redis (gRPC, production store)",
        ["processes / traffic", "in flight", "calls/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [
            Target(
                f"{widest} ≥ 1.0x of 1 process (scales to the core count, no collapse)",
                f"{ratios[widest]:.2f}x",
                ratios[widest] >= 1.0,
            ),
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
        ],
        figures={**figures, "failures": failures},
    )


if __name__ == "__main__":
    print(run().markdown())

"""``serve --workers``: 1 and 2 worker processes on one port against a bare grpc.aio echo in 1 and 2
processes on one port, on each store.

Everything shares the port the way ``--workers`` does (SO_REUSEPORT), and the client opens ``CONNECTIONS``
gRPC connections to it (the kernel deals connections, not calls, to the processes), so the question is
the one an operator asks: what does a second worker buy on this machine, next to what a second echo
process buys. On 2 cores that also run the load client (and PostgreSQL and Redis), neither can double.
"""

from __future__ import annotations

from contextlib import ExitStack

from benchmarks.client import SCRIPT, TIME_LIMIT_S, load_client
from benchmarks.grpc_turns import _echo_server
from benchmarks.load import Endpoint, Plan, against_baselines, bare_server, served_engines
from benchmarks.report import Section

CONNECTIONS = 8
COUNTS = (1, 2)


def _name(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"


def run(quick: bool = False) -> Section:
    plan = Plan.of(quick, levels=(16, 64))
    targets: dict[str, Endpoint] = {}
    baselines: dict[str, str] = {}
    # --quick (the harness works): 1 worker on the embedded store against 1 echo process, both the run's
    # shared ones (tests/ start --workers 2); 2 workers and the production store are the full run's.
    counts, stores = ((1,), ("embedded",)) if quick else (COUNTS, ("embedded", "production"))
    with ExitStack() as stack:
        echoes = {}
        for count in counts:
            echo = stack.enter_context(bare_server(_echo_server, processes=count))
            echoes[count] = f"bare echo, {count} process{'es' if count > 1 else ''}"
            targets[echoes[count]] = ("grpc", (echo,) * CONNECTIONS)
        for store in stores:
            for count in counts:
                served = stack.enter_context(served_engines(store, workers=count))
                label = f"engine, {store}, {_name(count)}"
                targets[label] = ("grpc", served.grpc_ports * CONNECTIONS)
                baselines[label] = echoes[count]
        client = stack.enter_context(load_client())
        rows, _ratios, figures = against_baselines(client, targets, baselines, plan)
    scaling = []
    for level, level_figures in figures.items() if len(counts) == 2 else ():
        assert isinstance(level_figures, dict)
        for what in ("bare echo", *(f"engine, {store}" for store in stores)):
            one, two = (level_figures[f"{label}_per_s"] for label in targets if label.startswith(what))
            scaling.append(f"{what} at {level} in flight: 2 processes = {two / one:.2f}x of 1")
    return Section(
        "serve --workers: 1 and 2 workers on one port vs a bare echo in 1 and 2 processes (gRPC)",
        ["server", "in flight", "calls/s (median, min-max)", "p50 ms", "p99 ms", "ratio"],
        rows,
        [],
        notes=[
            f"{plan.calls} calls per run (bounded to {TIME_LIMIT_S:.0f} s), {plan.repetitions} run(s) per"
            f" row, over {CONNECTIONS} connections to the one port; distinct conversations, each the pizza"
            f" happy path ({len(SCRIPT)} messages).",
            *scaling,
        ],
        figures=figures,
    )


if __name__ == "__main__":
    print(run().markdown())

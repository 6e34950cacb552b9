"""Validate + compile time of generated flows of 10 to 5,000 states: must stay linear."""

from __future__ import annotations

from benchmarks.generated import generated_flow
from benchmarks.report import Section, Stats, Target, repeat
from mcp_engine.flow.validate import validate_data
from mcp_engine.registry import default_registry
from mcp_engine.rulesets.compile import compile_flow

SIZES = (10, 100, 1_000, 5_000)
QUICK_SIZES = (10, 100, 1_000)


def run(quick: bool = False) -> Section:
    registry = default_registry()
    sizes = QUICK_SIZES if quick else SIZES
    stats: dict[int, Stats] = {}
    for size in sizes:
        doc = generated_flow(size)

        def validate_and_compile(doc: dict[str, object] = doc) -> None:
            flow = validate_data(doc, registry).raise_for_errors()
            compile_flow(flow, registry)

        validate_and_compile()  # warm the expression parser's cache the way a running engine has it
        stats[size] = repeat(validate_and_compile, 3)
    rows = [[f"{size:,}", stats[size].ms(), f"{stats[size].median / size * 1e6:.0f} µs"] for size in sizes]
    per_state = {size: stats[size].median / size for size in sizes}
    growth = per_state[sizes[-1]] / per_state[100]
    targets = [
        Target("1,000 states validated + compiled ≤ 1 s", stats[1_000].ms(), stats[1_000].median <= 1.0),
        Target(
            f"linear growth: per-state cost at {sizes[-1]:,} ≤ 1.5x that at 100",
            f"{growth:.2f}x",
            growth <= 1.5,
        ),
    ]
    return Section(
        "Validate + compile time by flow size",
        ["states", "validate + compile (median, min-max of 3)", "per state"],
        rows,
        targets,
        notes=["Generated flows mix every built-in state type and condition (benchmarks/generated.py)."],
        figures={
            str(size): {"median_s": s.median, "low_s": s.low, "high_s": s.high} for size, s in stats.items()
        },
    )


if __name__ == "__main__":
    print(run().markdown())

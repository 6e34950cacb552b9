"""How big a flow document may be, and how many of its warnings are worth reporting.

A flow comes from a tenant, so its size bounds what validating, compiling and storing it costs the engine
(issue 17: 1,500 transitions on one state in a 68 KB body took 26 s and 1.8 GB and gave 1.1 M warnings).
The bounds are the operator's (``MCP_MAX_FLOW_BYTES``, ``MCP_MAX_STATES``, ``MCP_MAX_TRANSITIONS``,
``MCP_MAX_YAML_ALIASES``, read once per process); a document over one is refused before anything else
looks at it, with a problem naming the limit and the JSON pointer (a 422; over the bytes, a 413).
Warnings are capped per code: the first ``MAX_WARNINGS_PER_CODE``, then one that says how many more.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_engine.flow.problems import Problem, pointer

if TYPE_CHECKING:
    from mcp_engine.config import EngineSettings

MAX_WARNINGS_PER_CODE = 20
MAX_YAML_VALUES = 200_000  # values a YAML document may expand to through its aliases


@dataclass(frozen=True)
class FlowLimits:
    max_flow_bytes: int = 1024 * 1024
    max_states: int = 2_000
    max_transitions: int = 256
    max_yaml_aliases: int = 1_000


def limits_of(settings: EngineSettings) -> FlowLimits:
    return FlowLimits(
        settings.max_flow_bytes, settings.max_states, settings.max_transitions, settings.max_yaml_aliases
    )


@functools.cache
def flow_limits() -> FlowLimits:
    """The operator's limits (``mcp_engine.config``, from the environment), read once per process."""
    from mcp_engine.config import EngineSettings  # config reads the environment: not at import time

    return limits_of(EngineSettings())


def size_problems(data: Any, limits: FlowLimits) -> list[Problem]:
    """Errors for a document with more states, or a state with more transitions, than the limits allow."""
    states = data.get("states") if isinstance(data, dict) else None
    if not isinstance(states, dict):
        return []
    if len(states) > limits.max_states:
        message = f"{len(states)} states, over the limit of {limits.max_states} (MCP_MAX_STATES)"
        return [Problem("error", "/states", message, "too-many-states")]
    problems = []
    for name, state in states.items():
        transitions = state.get("transitions") if isinstance(state, dict) else None
        if isinstance(transitions, list) and len(transitions) > limits.max_transitions:
            message = (
                f"{len(transitions)} transitions, over the limit of {limits.max_transitions} per state "
                "(MCP_MAX_TRANSITIONS)"
            )
            problems.append(
                Problem("error", pointer("states", name, "transitions"), message, "too-many-transitions")
            )
    return problems


def cap_warnings(problems: list[Problem], per_code: int = MAX_WARNINGS_PER_CODE) -> list[Problem]:
    """``problems`` with at most ``per_code`` warnings of each code, and a summary warning per cut code."""
    seen: Counter[str] = Counter()
    kept = []
    for problem in problems:
        if problem.severity == "warning":
            seen[problem.code] += 1
            if seen[problem.code] > per_code:
                continue
        kept.append(problem)
    for code, count in seen.items():
        if count > per_code:
            message = f"and {count - per_code} more '{code}' warnings like the ones above"
            kept.append(Problem("warning", "", message, code))
    return kept

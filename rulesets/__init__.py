"""Flow transitions -> rulesets in durable_rules' vocabulary -> a rules backend (ARCHITECTURE.md).

``compile_flow`` turns each state's transitions into a ``StateRuleset`` once; per evaluation the engine
builds the facts with ``StateRuleset.facts`` and asks an ``Evaluator`` (from ``get_backend().load``) for
the transition to take. ``MCP_RULES_BACKEND`` picks the backend: ``python`` (default) or ``durable``.
"""

from __future__ import annotations

import os

from mcp_engine.rulesets.compile import compile_flow, compile_state
from mcp_engine.rulesets.context import TransitionContext
from mcp_engine.rulesets.python import PythonBackend
from mcp_engine.rulesets.ruleset import Backend, Evaluator, Facts, Phase, Rule, StateRuleset
from mcp_engine.rulesets.vocab import Condition, RulesetError

BACKENDS = ("python", "durable")


def get_backend(name: str | None = None) -> Backend:
    """The backend called ``name``, else ``$MCP_RULES_BACKEND``, else ``python``.

    durable_rules is imported only when its backend is chosen.
    """
    chosen = name or os.environ.get("MCP_RULES_BACKEND") or "python"
    if chosen == "python":
        return PythonBackend()
    if chosen == "durable":
        from mcp_engine.rulesets.durable import DurableBackend

        return DurableBackend()
    raise ValueError(f"unknown rules backend {chosen!r} (MCP_RULES_BACKEND is one of {', '.join(BACKENDS)})")


__all__ = [
    "BACKENDS",
    "Backend",
    "Condition",
    "Evaluator",
    "Facts",
    "Phase",
    "Rule",
    "RulesetError",
    "StateRuleset",
    "TransitionContext",
    "compile_flow",
    "compile_state",
    "get_backend",
]

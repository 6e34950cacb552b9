"""Each state's transitions compiled into its ruleset at validation, as publishing will compile them.

A condition plugin whose ``rule()`` fails, or a condition the durable_rules backend cannot hold (the
``$or`` forms it rejects, more alternatives than it can evaluate at once), is then refused by
``validate`` with the transition's pointer, instead of failing at publish or at run time with
``MCP_RULES_BACKEND=durable``. A flow is portable between the two backends, so this holds whichever one
the engine runs. Compiling is linear in the transitions; durable_rules is asked rule by rule, each loaded
and deleted at once (about 20 µs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from mcp_engine.flow.models import Flow
from mcp_engine.flow.problems import Problem, pointer
from mcp_engine.registry import Registry
from mcp_engine.rulesets import RulesetError, StateRuleset, compile_state

log = logging.getLogger(__name__)


def ruleset_problems(flow: Flow, registry: Registry, states: Iterable[str]) -> Iterator[Problem]:
    """Problems of compiling ``states`` (those of ``flow`` whose own checks found no error)."""
    refusals: Callable[[StateRuleset], list[tuple[int, str]]] | None
    try:
        from mcp_engine.rulesets.durable import refusals
    except ImportError:  # durable_rules does not build everywhere: then only compiling is checked
        log.debug("durable_rules is not importable: its limits are not checked")
        refusals = None
    for name in states:
        try:
            ruleset = compile_state(flow, name, registry)
        except RulesetError as exc:
            yield Problem("error", pointer("states", name, "transitions"), str(exc), "bad-condition")
            continue
        except Exception as exc:  # a plugin's rule() or Config that breaks: reported, never a traceback
            message = f"the transitions do not compile: {type(exc).__name__}: {exc}"
            yield Problem("error", pointer("states", name, "transitions"), message, "bad-condition")
            continue
        for index, reason in refusals(ruleset) if refusals is not None else ():
            yield Problem("error", pointer("states", name, "transitions", index), reason, "durable-refuses")

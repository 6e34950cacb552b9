"""Validating a flow document: every problem at once, each with its JSON pointer and line.

Three passes: the document schema (pydantic), the plugins' configurations and every reference
(``checks``), then the whole-graph checks (``analysis``). A broken document never raises: it
produces the list. When the schema pass fails, the states that did validate are still checked,
so one typo does not hide the other problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mcp_engine.errors import FlowValidationError
from mcp_engine.flow.analysis import FlowGraph, analyse, analyse_despite_errors
from mcp_engine.flow.checks import ReferenceChecker, pydantic_problems
from mcp_engine.flow.gc_pause import paused_gc
from mcp_engine.flow.limits import FlowLimits, cap_warnings, flow_limits, size_problems
from mcp_engine.flow.loader import Source, parse_text, read_file
from mcp_engine.flow.models import Flow, State
from mcp_engine.flow.numbers import nonfinite_problems
from mcp_engine.flow.problems import Problem, pointer
from mcp_engine.flow.responses import response_path_problems
from mcp_engine.flow.rule_checks import ruleset_problems
from mcp_engine.registry import PluginUse, Registry, default_registry

PLACEHOLDERS = {"flow_id": "invalid", "tenant_id": "invalid", "name": "invalid", "version": "0.0.0"}


@dataclass
class ValidationResult:
    """The problems of one document, and the flow when the schema pass succeeded."""

    problems: list[Problem] = field(default_factory=list)
    flow: Flow | None = None
    source: str | None = None
    plugins_used: list[PluginUse] = field(default_factory=list)  # every plugin kind the flow names

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> Flow:
        """The valid flow, or ``FlowValidationError`` carrying every problem."""
        if self.errors or self.flow is None:
            raise FlowValidationError(self.problems, self.source)
        return self.flow


def validate_data(
    data: Any,
    registry: Registry | None = None,
    source: Source | None = None,
    limits: FlowLimits | None = None,
) -> ValidationResult:
    """Validate a parsed document (a dict from JSON/YAML); ``limits``: the operator's by default."""
    with paused_gc():
        return _validate(data, registry or default_registry(), source, limits or flow_limits())


def _validate(data: Any, registry: Registry, source: Source | None, limits: FlowLimits) -> ValidationResult:
    result = ValidationResult(source=source.name if source else None)
    result.problems = size_problems(data, limits)
    if result.problems:  # over a limit: nothing else is looked at, so the refusal costs next to nothing
        return _located(result, source)
    result.problems.extend(nonfinite_problems(data))
    flow, partial = _schema_pass(data, result.problems)
    if flow is not None:
        state_names = set(data["states"]) if partial else set(flow.states)
        checker = ReferenceChecker(flow, registry, state_names)
        result.problems.extend(checker.run())
        result.plugins_used = checker.plugins_used
        if not partial:
            result.flow = flow
            if not result.errors:
                configured = FlowGraph(flow, registry, checker.expressions, checker.named_states())
                result.problems.extend(analyse(configured))
        _more_checks(result, flow, registry, checker, data["states"])
    result.problems = cap_warnings(result.problems)
    return _located(result, source)


def _located(result: ValidationResult, source: Source | None) -> ValidationResult:
    """The problems with their lines, errors first."""
    if source is not None:
        result.problems = [
            p if p.line is not None else p.with_line(source.line_of(p.pointer)) for p in result.problems
        ]
    result.problems.sort(key=lambda p: (p.severity != "error", p.line or 0, p.pointer))
    return result


def _more_checks(
    result: ValidationResult, flow: Flow, registry: Registry, checker: ReferenceChecker, states: Any
) -> None:
    """What issue 10 added: the graph checks despite errors, the rulesets as publishing compiles them
    (durable_rules' limits included), response mappings against the documented responses."""
    if result.errors:
        graph = FlowGraph(flow, registry, checker.expressions, checker.named_states())
        result.problems.extend(analyse_despite_errors(graph, set(checker.configs), states))
    broken = {p.pointer.split("/")[2] for p in result.errors if p.pointer.startswith("/states/")}
    clean = [name for name in flow.states if name in checker.configs and pointer(name)[1:] not in broken]
    result.problems.extend(ruleset_problems(flow, registry, clean))
    result.problems.extend(response_path_problems(flow, [(use.ref, use.path) for use in checker.uses]))


def validate_text(text: str, name: str | None = None, registry: Registry | None = None) -> ValidationResult:
    source, problem = parse_text(text, name)
    if source is None:
        return ValidationResult([problem] if problem else [], source=name)
    return validate_data(source.data, registry, source)


def validate_file(path: str | Path, registry: Registry | None = None) -> ValidationResult:
    source, problem = read_file(path)
    if source is None:
        return ValidationResult([problem] if problem else [], source=str(path))
    return validate_data(source.data, registry, source)


def load_flow(path_or_data: str | Path | dict[str, Any], registry: Registry | None = None) -> Flow:
    """A valid flow from a file path or a dict, or ``FlowValidationError`` with every problem."""
    if isinstance(path_or_data, dict):
        return validate_data(path_or_data, registry).raise_for_errors()
    return validate_file(path_or_data, registry).raise_for_errors()


def _schema_pass(data: Any, problems: list[Problem]) -> tuple[Flow | None, bool]:
    """The validated flow and whether it is partial (salvaged around schema errors)."""
    if not isinstance(data, dict):
        problems.append(Problem("error", "", "a flow document must be a JSON object", "schema"))
        return None, False
    try:
        return Flow.model_validate(data), False
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc))
        return _salvage(data, exc), True


def _salvage(data: dict[str, Any], exc: ValidationError) -> Flow | None:
    """A flow of the parts that did validate, so that reference checks can still run on them."""
    broken = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
    salvaged = {k: v for k, v in data.items() if k not in broken or k in PLACEHOLDERS}
    for key in broken & PLACEHOLDERS.keys():
        salvaged[key] = PLACEHOLDERS[key]
    states = data.get("states")
    if not isinstance(states, dict) or not isinstance(data.get("initial_state"), str):
        return None
    good = {}
    for name, state in states.items():
        try:
            good[name] = State.model_validate(state)
        except ValidationError:
            continue
    if not good:
        return None
    salvaged["states"] = good
    try:
        return Flow.model_validate(salvaged)
    except ValidationError:
        return None

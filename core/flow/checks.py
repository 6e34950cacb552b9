"""Reference checks: every name a flow uses resolves, through the plugins' ``references()``.

The checker walks the document once, asks each state type, action and condition what its
configuration refers to, and resolves each reference against the flow and the registry.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from mcp_engine.contract import ConditionType, Reference
from mcp_engine.expressions.evaluate import paths
from mcp_engine.expressions.nodes import Node
from mcp_engine.expressions.parser import ExpressionError, parse
from mcp_engine.flow.models import Action, Flow
from mcp_engine.flow.problems import Problem, pointer
from mcp_engine.registry import Kind, PluginUse, Registry, enables, named
from mcp_engine.runtime.templates import TemplateCompileError, TemplateEngine

Path = tuple[str | int, ...]


def near(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean a, b?)' for close candidates, else ''."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def known(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


def pydantic_problems(exc: ValidationError, prefix: Path = ()) -> Iterator[Problem]:
    """Turn pydantic's errors into problems with JSON pointers and designer-readable messages."""
    for err in exc.errors(include_url=False):
        loc: Path = prefix + tuple(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown field '{loc[-1]}'"
        elif err["type"] == "missing":
            message = f"missing required field '{loc[-1]}'"
        elif err["type"] != "value_error" or not isinstance(err.get("input"), dict | list):
            message += given(err.get("input"), message)  # a validator's own message names its object
        yield Problem("error", pointer(*loc), message, "schema")


def given(value: Any, message: str) -> str:
    """', got 5000': the value a designer wrote, for a message that does not quote it already."""
    if isinstance(value, dict | list):
        return f", got {'an object' if isinstance(value, dict) else 'a list'}"
    shown = json.dumps(value) if isinstance(value, bool | int | float | None) else repr(str(value))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return "" if shown in message else f", got {shown}"


@dataclass
class _Use:
    """A reference found in the document, with the path where it stands."""

    ref: Reference
    path: Path


@dataclass
class ReferenceChecker:
    flow: Flow
    registry: Registry
    state_names: set[str]
    problems: list[Problem] = field(default_factory=list)
    configs: dict[str, BaseModel] = field(default_factory=dict)
    uses: list[_Use] = field(default_factory=list)
    expressions: dict[Path, Node] = field(default_factory=dict)
    plugins_used: list[PluginUse] = field(default_factory=list)
    _templates: TemplateEngine = field(default_factory=TemplateEngine)

    def error(self, path: Path, message: str, code: str) -> None:
        self.problems.append(Problem("error", pointer(*path), message, code))

    def run(self) -> list[Problem]:
        flow = self.flow
        self.use(Reference("state", flow.initial_state), ("initial_state",))
        self.check_plugins()
        for name, integration in flow.integrations.items():
            self.lookup(
                self.registry.integration_clients,
                integration.type,
                ("integrations", name, "type"),
                "unknown-integration-type",
                "integration type",
            )
        self.check_classifier()
        handlers = flow.global_handlers
        for intent, handler in handlers.intents.items():
            self.use(Reference("intent", intent), ("global_handlers", "intents", intent))
            self.use(
                Reference("state", handler.target_state),
                ("global_handlers", "intents", intent, "target_state"),
            )
        if handlers.no_match and handlers.no_match.target_state:
            self.use(
                Reference("state", handlers.no_match.target_state),
                ("global_handlers", "no_match", "target_state"),
            )
            self.use(
                Reference("template", handlers.no_match.response), ("global_handlers", "no_match", "response")
            )
        if handlers.error_state:
            self.use(Reference("state", handlers.error_state), ("global_handlers", "error_state"))
        for name, state in flow.states.items():
            self.check_state(name, state.type, state.config, ("states", name))
            for field_name in ("entry_actions", "exit_actions"):
                self.check_actions(getattr(state, field_name), ("states", name, field_name))
            for i, transition in enumerate(state.transitions):
                base = ("states", name, "transitions", i)
                self.use(Reference("state", transition.target_state), (*base, "target_state"))
                self.check_condition(
                    name, transition.condition, transition.condition_value, transition.expression, base
                )
                self.check_actions(transition.actions, (*base, "actions"))
        self.resolve()
        return self.problems

    def lookup(
        self, kind: Kind[Any], name: str, path: Path, code: str, what: str | None = None
    ) -> type[Any] | None:
        """The class registered as ``name``, noting that the flow uses it; else an error at ``path``: an
        unknown name (with near matches), or one the tenant's enabled plugins leave out (naming both)."""
        found = kind.get(name)
        if found is not None:
            self.plugins_used.append(
                PluginUse(f"{kind.label} '{name}'", kind.providers[name], pointer(*path))
            )
            return found
        hidden = kind.hidden.get(name)
        if hidden is not None:
            self.error(
                path,
                f"{kind.label} '{name}' comes from {hidden}, which tenant '{self.registry.tenant_id}' "
                "has not enabled",
                "plugin-not-enabled",
            )
        else:
            names = kind.names()
            self.error(
                path,
                f"unknown {what or kind.label} '{name}'{near(name, names)} (known: {known(names)})",
                code,
            )
        return None

    def check_plugins(self) -> None:
        """The flow's ``plugins``: each an installed plugin or distribution that the tenant has enabled."""
        registry = self.registry
        for i, name in enumerate(self.flow.plugins):
            path = ("plugins", i)
            matching = [p for p in registry.providers() if named(name, p)]
            usable = [p for p in matching if enables(registry.enabled, p)]
            skipped = [s for s in registry.skipped if named(name, s.provider)]
            if usable:
                self.plugins_used.extend(PluginUse(f"plugin '{name}'", p, pointer(*path)) for p in usable)
            elif matching:
                self.error(
                    path,
                    f"plugin '{name}' ({matching[0]}) is not enabled for tenant '{registry.tenant_id}'",
                    "plugin-not-enabled",
                )
            elif skipped:
                self.error(
                    path, f"plugin '{name}' is installed but skipped: {skipped[0].reason}", "unknown-plugin"
                )
            else:
                installed = sorted({p.plugin for p in registry.providers() if not p.builtin})
                listed = f"{near(name, installed)} (installed: {known(installed)})"
                self.error(path, f"plugin '{name}' is not installed{listed}", "unknown-plugin")

    def check_classifier(self) -> None:
        settings = self.flow.settings
        kind = self.registry.classifiers
        classifier = self.lookup(kind, settings.classifier, ("settings", "classifier"), "unknown-classifier")
        if classifier is None:
            return
        try:
            classifier.Config.model_validate(settings.classifier_config)
        except ValidationError as exc:
            self.problems.extend(pydantic_problems(exc, ("settings", "classifier_config")))

    def configure(self, kind: Kind[Any], name: str, config: dict[str, Any], path: Path) -> BaseModel | None:
        plugin = self.lookup(kind, name, (*path, "type"), f"unknown-{kind.label.replace(' ', '-')}")
        if plugin is None:
            return None
        try:
            parsed: BaseModel = plugin.Config.model_validate(config)
        except ValidationError as exc:
            self.problems.extend(
                pydantic_problems(exc, path if kind.label == "action" else (*path, "config"))
            )
            return None
        base = path if kind.label == "action" else (*path, "config")
        for ref in plugin.references(parsed):
            self.use(ref, base + ref.path)
        return parsed

    def check_state(self, name: str, type_name: str, config: dict[str, Any], path: Path) -> None:
        parsed = self.configure(self.registry.state_types, type_name, config, path)
        if parsed is not None:
            self.configs[name] = parsed

    def check_actions(self, actions: list[Action], path: Path) -> None:
        for i, action in enumerate(actions):
            self.configure(self.registry.actions, action.type, action.params(), (*path, i))

    def check_condition(
        self, state: str, name: str, value: str | None, expression: str | None, path: Path
    ) -> None:
        condition: type[ConditionType] | None = self.lookup(
            self.registry.conditions, name, (*path, "condition"), "unknown-condition"
        )
        if condition is None:
            return
        if condition.value == "required" and not value:
            self.error(
                (*path, "condition_value"), f"condition '{name}' needs a condition_value", "missing-value"
            )
        if value:
            try:
                condition.validate_value(value)
            except ValueError as exc:
                self.error((*path, "condition_value"), str(exc), "bad-value")
            for ref in condition.value_references(value):
                self.use(ref, (*path, "condition_value"))
        if condition.reads_expression:
            if not expression:
                self.error((*path, "expression"), f"condition '{name}' needs an expression", "missing-value")
            else:
                self.use(Reference("expression", expression), (*path, "expression"))
        elif expression is not None:
            self.error(
                (*path, "expression"), f"condition '{name}' does not read 'expression'", "unused-field"
            )

    def use(self, ref: Reference, path: Path) -> None:
        self.uses.append(_Use(ref, path))

    def named_states(self) -> dict[str, list[str]]:
        """Per state, the states its part of the document names (transition targets, and what its actions
        and configuration refer to), in the order they were found."""
        named: dict[str, list[str]] = {name: [] for name in self.flow.states}
        for use in self.uses:
            if use.ref.kind == "state" and use.path[:1] == ("states",) and use.path[1] in named:
                named[str(use.path[1])].append(use.ref.value)
        return named

    def resolve(self) -> None:
        """Resolve every collected reference; slots last, once every collected slot is known."""
        collected = {u.ref.value for u in self.uses if u.ref.kind == "slot_collected"}
        slot_uses: list[_Use] = []
        for use in list(self.uses):
            ref, path = use.ref, use.path
            if ref.kind == "state" and ref.value not in self.state_names:
                self.error(
                    path,
                    f"no state named '{ref.value}'{near(ref.value, self.state_names)}",
                    "unknown-state",
                )
            elif ref.kind == "intent" and ref.value not in self.flow.intents:
                self.error(
                    path,
                    f"intent '{ref.value}' is not declared in 'intents'{near(ref.value, self.flow.intents)}",
                    "unknown-intent",
                )
            elif ref.kind == "integration" and ref.value not in self.flow.integrations:
                self.error(
                    path,
                    f"integration '{ref.value}' is not declared in 'integrations'"
                    f"{near(ref.value, self.flow.integrations)}",
                    "unknown-integration",
                )
            elif ref.kind == "slot_rule":
                self.check_rule(ref.value, path)
            elif ref.kind == "template":
                self.check_template(ref.value, path)
            elif ref.kind == "expression":
                slot_uses.extend(self.check_expression(ref.value, path))
            elif ref.kind == "slot_used":
                slot_uses.append(use)
        for use in slot_uses:
            if use.ref.value not in collected:
                self.error(
                    use.path,
                    f"slot '{use.ref.value}' is not collected by any state{near(use.ref.value, collected)}",
                    "unknown-slot",
                )

    def check_rule(self, rule: str, path: Path) -> None:
        kind_name, sep, argument = rule.partition(":")
        kind = self.lookup(self.registry.rule_kinds, kind_name.strip(), path, "bad-rule")
        if kind is None:
            return
        try:
            kind.parse(argument if sep else None)
        except ValueError as exc:
            self.error(path, f"rule '{rule}': {exc}", "bad-rule")
            return
        if sep and not argument.strip():
            name = kind_name.strip()
            self.error(
                path, f"rule '{rule}': nothing after ':' (write '{name}' alone, or its argument)", "bad-rule"
            )

    def check_template(self, template: str, path: Path) -> None:
        try:
            self._templates.compile(template)
        except TemplateCompileError as exc:
            self.error(path, str(exc), "template-syntax")

    def check_expression(self, text: str, path: Path) -> Iterator[_Use]:
        try:
            node = parse(text)
        except ExpressionError as exc:
            self.problems.append(
                Problem(
                    "error",
                    pointer(*path),
                    f"expression does not parse: {exc}",
                    "expression-syntax",
                    column=exc.column,
                )
            )
            return
        self.expressions[path] = node
        for found in _slot_paths(node):
            yield _Use(Reference("slot_used", found), path)


def _slot_paths(node: Node) -> Iterator[str]:
    """Slot names read by an expression (``slots.size`` or ``slots["size"]``)."""
    for found in paths(node):
        if len(found) >= 2 and found[0] == "slots" and isinstance(found[1], str):
            yield found[1]

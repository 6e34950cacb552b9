"""A flow compiled once per (tenant, flow, version): plugin instances, rulesets, templates, clients.

The turn only looks things up here; it never parses, validates or compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_engine.contract import (
    Action,
    IntegrationClient,
    IntentClassifier,
    RuleKind,
    Services,
    StateType,
    Template,
)
from mcp_engine.errors import InvalidInput
from mcp_engine.expressions.evaluate import compile_expression
from mcp_engine.expressions.parser import parse
from mcp_engine.flow.models import Action as ActionModel
from mcp_engine.flow.models import Flow, State, Transition
from mcp_engine.registry import PluginUse, Registry
from mcp_engine.rulesets import Evaluator, StateRuleset, compile_state
from mcp_engine.rulesets.ruleset import Backend
from mcp_engine.runtime.breaker import GuardedClient
from mcp_engine.runtime.context import Keep
from mcp_engine.runtime.templates import TemplateEngine

# A compiled flow (models, rulesets, closures, templates, classifier) holds about 20-30 bytes per byte of
# its document's JSON (measured with tracemalloc on the example flows and generated ones).
BYTES_PER_DOCUMENT_BYTE = 32


@dataclass
class CompiledTransition:
    target: str
    actions: list[Action]


@dataclass
class CompiledState:
    name: str
    model: State
    plugin: StateType
    ruleset: StateRuleset
    evaluator: Evaluator
    transitions: list[CompiledTransition]
    entry_actions: list[Action]
    exit_actions: list[Action]
    waits: bool  # consumes input, or has input transitions (SPEC §4)
    candidates: tuple[str, ...]  # intents classified when a message arrives here
    own_intents: frozenset[str]  # intents this state's transitions name: global handlers yield to them
    threshold: float
    fallback_intent: str | None  # taken below the threshold
    timeout_ms: int | None  # the server-side timeout armed on entry
    context_turns: int = 0  # earlier messages a context-reading classifier sees here (context_aware)


@dataclass
class CompiledFlow:
    flow: Flow
    states: dict[str, CompiledState]
    classifier: IntentClassifier
    integrations: dict[str, IntegrationClient]
    templates: TemplateEngine
    evaluators: list[Evaluator] = field(default_factory=list)
    needs: tuple[PluginUse, ...] = ()  # the third-party plugins it uses: each must be enabled to run
    size_bytes: int = 0  # the memory it holds, estimated: what the catalogue's cache bounds
    context_turns: int = 0  # the most any state's classifier looks back (context_aware)
    kept: Keep = field(default_factory=Keep)  # what the turn keeps of its messages (recent_messages)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.flow.tenant_id, self.flow.flow_id, self.flow.version)

    def close(self) -> None:
        for evaluator in self.evaluators:
            evaluator.close()


class _Assets:
    """``FlowAssets`` for plugins' ``prepare``: templates, rule kinds and expressions of this flow."""

    def __init__(self, flow: Flow, registry: Registry, templates: TemplateEngine) -> None:
        self._flow, self._registry, self._templates = flow, registry, templates

    @property
    def flow(self) -> Flow:
        return self._flow

    def template(self, text: str) -> Template:
        return self._templates.compile(text)

    @property
    def rule_kinds(self) -> Mapping[str, type[RuleKind]]:
        return self._registry.rule_kinds.classes

    def expression(self, text: str) -> Callable[[Mapping[str, Any]], Any]:
        return compile_expression(parse(text))


def compile_flow(flow: Flow, registry: Registry, backend: Backend, services: Services) -> CompiledFlow:
    """Instantiate every plugin of ``flow`` and compile its rulesets; ``flow`` is already validated."""
    templates = TemplateEngine()
    assets = _Assets(flow, registry, templates)
    classifier_cls = registry.classifiers.get(flow.settings.classifier)
    if classifier_cls is None:
        raise InvalidInput(f"intent classifier '{flow.settings.classifier}' is not installed")
    classifier = classifier_cls(
        flow.intents, classifier_cls.Config.model_validate(flow.settings.classifier_config), services
    )
    integrations: dict[str, IntegrationClient] = {}
    for integration_id, integration in flow.integrations.items():
        client_cls = registry.integration_clients.get(integration.type)
        if client_cls is None:
            raise InvalidInput(f"integration client '{integration.type}' is not installed")
        scope = ("integration", flow.tenant_id, flow.flow_id, integration_id)
        breaker = services.breaker(scope, integration_id, integration.circuit_breaker)
        client = client_cls(integration, services)
        integrations[integration_id] = GuardedClient(client, breaker)
    compiled = CompiledFlow(flow, {}, classifier, integrations, templates)
    handler_intents = tuple(flow.global_handlers.intents)
    for name, state in flow.states.items():
        compiled.states[name] = _compile_state(flow, name, state, registry, backend, assets, handler_intents)
        compiled.evaluators.append(compiled.states[name].evaluator)
    compiled.size_bytes = BYTES_PER_DOCUMENT_BYTE * len(flow.model_dump_json())
    if classifier.reads_context:
        compiled.context_turns = max((s.context_turns for s in compiled.states.values()), default=0)
    compiled.kept = Keep(
        flow.settings.history_messages, compiled.context_turns + 1 if compiled.context_turns else 0
    )
    return compiled


def _actions(models: list[ActionModel], registry: Registry, assets: _Assets) -> list[Action]:
    actions: list[Action] = []
    for model in models:
        cls = registry.actions.get(model.type)
        if cls is None:
            raise InvalidInput(f"action '{model.type}' is not installed")
        action = cls(cls.Config.model_validate(model.params()))
        action.prepare(assets)
        actions.append(action)
    return actions


def _compile_state(
    flow: Flow,
    name: str,
    state: State,
    registry: Registry,
    backend: Backend,
    assets: _Assets,
    handler_intents: tuple[str, ...],
) -> CompiledState:
    cls = registry.state_types.get(state.type)
    if cls is None:
        raise InvalidInput(f"state type '{state.type}' is not installed")
    plugin = cls(name, cls.Config.model_validate(state.config))
    plugin.prepare(assets)
    implied = [Transition.model_validate(t) for t in plugin.implied_transitions()]
    if implied:  # compiled as if the document had them last (the flow itself stays as written)
        state = state.model_copy(update={"transitions": [*state.transitions, *implied]})
        flow = flow.model_copy(update={"states": {**flow.states, name: state}})
    ruleset = compile_state(flow, name, registry, plugin)
    transitions = [
        CompiledTransition(t.target_state, _actions(t.actions, registry, assets)) for t in state.transitions
    ]
    kinds = [registry.conditions.get(t.condition) for t in state.transitions]
    own = tuple(
        dict.fromkeys(
            ref.value
            for kind, t in zip(kinds, state.transitions, strict=True)
            if kind is not None
            for ref in kind.value_references(t.condition_value)
            if ref.kind == "intent"
        )
    )
    has_input = any(k is not None and k.kind == "input" for k in kinds)
    classification = plugin.classification(flow)
    candidates = own if classification.candidates is None else classification.candidates
    threshold = classification.threshold
    return CompiledState(
        name=name,
        model=state,
        plugin=plugin,
        ruleset=ruleset,
        evaluator=backend.load(ruleset),
        transitions=transitions,
        entry_actions=_actions(state.entry_actions, registry, assets),
        exit_actions=_actions(state.exit_actions, registry, assets),
        waits=cls.consumes_input or cls.ends_run or has_input,
        candidates=tuple(dict.fromkeys([*candidates, *handler_intents])),
        own_intents=frozenset(own),
        threshold=flow.settings.confidence_threshold if threshold is None else threshold,
        fallback_intent=classification.fallback_intent,
        timeout_ms=plugin.timeout_ms(),
        context_turns=classification.context_turns,
    )

"""What a plugin sees during a turn: a narrow, typed view of one conversation's turn.

State types and actions get a ``TurnView``; they read and change the conversation's context (a plain
dict, never a model: it is serialised once per turn), emit messages, render templates and reach the
engine's services. They cannot reach storage or other conversations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mcp_engine.flow.models import Flow


@dataclass(frozen=True, slots=True)
class IntentScore:
    """One ranked answer of an intent classifier."""

    name: str
    confidence: float


@dataclass(slots=True)
class OutboundMessage:
    """A message the engine sends in a turn; ``attributes`` travel to the channel (delay_ms, ...)."""

    text: str
    type: str = "text"
    attributes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "attributes": dict(self.attributes)}


@dataclass(frozen=True, slots=True)
class IntegrationRequest:
    """One call to an integration, everything already rendered and mapped by the engine."""

    method: str
    endpoint: str  # rendered path (or full URL) joined to the integration's base_url by the client
    params: dict[str, Any]  # request_mapping results: query parameters for GET, JSON body otherwise
    timeout_ms: int  # per attempt
    max_retries: int
    backoff_ms: int
    retry_on: tuple[str, ...]  # error kinds that are retried; http_4xx never is
    deadline: float  # time.monotonic() after which no attempt may start (the turn's deadline)


@dataclass(frozen=True, slots=True)
class IntegrationResult:
    """What a call gave: data on success, else an error kind (timeout, http_4xx, http_5xx, network,
    mapping)."""

    ok: bool
    data: Any = None
    error: str | None = None
    message: str = ""
    status: int | None = None
    attempts: int = 1
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ExtractContext:
    """What slot extraction needs to know about the conversation: its clock and timezone."""

    timezone: str = "UTC"
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass(frozen=True, slots=True)
class Found:
    """A value a rule found in text: ``valid`` is False when it is there but breaks the rule (``reason``)."""

    value: Any
    start: int
    end: int
    valid: bool = True
    reason: str = ""


class Template(Protocol):
    """A template compiled once per flow version."""

    def render(self, namespace: Mapping[str, Any]) -> str: ...


class FlowAssets(Protocol):
    """What a state type or action may prepare from when its flow is compiled (``prepare``)."""

    @property
    def flow(self) -> Flow: ...

    def template(self, text: str) -> Template:
        """Compile ``text`` once for this flow version."""
        ...

    @property
    def rule_kinds(self) -> Mapping[str, Any]:
        """The registered slot rule kind classes by name (``int``, ``enum``, ...)."""
        ...

    def expression(self, text: str) -> Callable[[Mapping[str, Any]], Any]:
        """Compile an expression of the safe language once; call it with ``turn.namespace()``."""
        ...


class TurnView(Protocol):
    """The turn as state types and actions see it."""

    @property
    def context(self) -> dict[str, Any]:
        """The conversation's context (slots, variables, user_profile, ...); change it in place."""
        ...

    @property
    def event(self) -> dict[str, Any] | None:
        """The event delivered this turn (``{"type", "text", "attributes"}``) or None on entry."""
        ...

    @property
    def flow(self) -> Flow: ...

    @property
    def state_name(self) -> str: ...

    @property
    def config(self) -> BaseModel:
        """The current state's parsed ``config``."""
        ...

    def namespace(self) -> dict[str, Any]:
        """The expression/template namespace: slots, variables, user_profile, intent, event, ..."""
        ...

    def render(self, template: Template) -> str:
        """Render a template prepared at compile time against this turn's namespace."""
        ...

    def emit(self, text: str, type: str = "text", **attributes: str) -> None:
        """Send a message in this turn's reply."""
        ...

    def record(self, event_type: str, data: dict[str, Any]) -> None:
        """Append an analytics event to the turn (kept in history, published to sinks)."""
        ...

    def extract_context(self) -> ExtractContext: ...

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` past which the turn is abandoned: no call may start after it."""
        ...

    def integration(self, integration_id: str) -> Any:
        """The ``IntegrationClient`` of a declared integration of this flow."""
        ...

    def record_integration(self, integration_id: str, result: IntegrationResult) -> None:
        """Remember a call's outcome for ``integration_success``/``integration_error``, and record it."""
        ...

    def trigger_flow(self, flow_id: str, return_state: str) -> None:
        """Run another flow of the tenant once the current action list has run (SPEC §2)."""
        ...

"""pydantic models of the flow document (SPEC §2); validated at the edges, never per turn.

Per-type ``config`` and action params are kept as plain data here and checked against the
registered plugin's ``Config`` by the validator, so third-party kinds validate like built-ins.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from mcp_engine.regexes import compile_regex

FLOW_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SEMVER_PATTERN = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"
ERROR_KINDS = ("timeout", "http_4xx", "http_5xx", "network", "mapping", "circuit_open")
RetryableError = Literal["timeout", "http_5xx", "network"]


def _linear_pattern(pattern: str) -> str:
    """A pattern RE2 can run; its ``PatternError`` (a ValueError) says why not, at the pattern's pointer."""
    compile_regex(pattern)
    return pattern


Pattern = Annotated[str, AfterValidator(_linear_pattern)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Action(BaseModel):
    """``{"type": <action type>, ...params}``; the params are checked against the action type's Config."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="A registered action type, e.g. send_message")

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Transition(Strict):
    condition: str = Field(description="A registered condition type, e.g. intent_match")
    condition_value: str | None = Field(None, description="The condition's argument, e.g. an intent name")
    expression: str | None = Field(None, description="For condition 'expression': the expression to test")
    target_state: str
    priority: int = Field(100, ge=0, le=1000, description="0..1000; lower is tried first, ties in order")
    actions: list[Action] = Field(default_factory=list)


class State(Strict):
    type: str = Field(description="A registered state type, e.g. response")
    config: dict[str, Any] = Field(default_factory=dict, description="Checked against the type's schema")
    transitions: list[Transition] = Field(default_factory=list)
    entry_actions: list[Action] = Field(default_factory=list)
    exit_actions: list[Action] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Intent(Strict):
    examples: list[str] = Field(default_factory=list)
    patterns: list[Pattern] = Field(
        default_factory=list, description="Regular expressions, RE2 syntax (confidence 1.0)"
    )


class RetryPolicy(Strict):
    max_retries: int = Field(2, ge=0, le=10)
    backoff_ms: int = Field(200, ge=0, le=60_000)
    retry_on: list[RetryableError] = Field(
        default_factory=lambda: list[RetryableError](["timeout", "http_5xx", "network"]),
        description="Error kinds that are retried; http_4xx never is",
    )


class CircuitBreaker(Strict):
    """When to stop calling a failing service for a while (``mcp_engine.runtime.breaker``)."""

    failure_threshold: int = Field(
        5, ge=1, le=1000, description="Failed calls (timeout, http_5xx, network) in window_ms that open it"
    )
    window_ms: int = Field(60_000, ge=1, le=3_600_000, description="How long failures are counted together")
    reset_timeout_ms: int = Field(
        30_000, ge=1, le=3_600_000, description="How long it stays open before trial calls are let through"
    )
    half_open_max_calls: int = Field(
        1, ge=1, le=100, description="Trial calls let through at once while half-open"
    )


class Integration(Strict):
    type: str = Field("rest", description="A registered integration client")
    base_url: str
    headers: dict[str, str] = Field(default_factory=dict, description="Values may use ${env:NAME}")
    authentication: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: int = Field(5000, ge=1, le=120_000)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    response_examples: dict[str, Any] = Field(
        default_factory=dict,
        description="Documented responses: endpoint as the flow writes it (optionally after the method,"
        " 'POST /tickets'; '*' for any call) -> an example of its JSON body. The validator tries each"
        " response_mapping JSONPath on it; the engine never sends or checks it at run time",
    )


class IntentHandler(Strict):
    target_state: str
    resume: bool = False


class NoMatchHandler(Strict):
    response: str = "Sorry, I didn't get that."
    max_consecutive: int = Field(3, ge=1, le=100)
    target_state: str | None = None


class GlobalHandlers(Strict):
    intents: dict[str, IntentHandler] = Field(default_factory=dict)
    no_match: NoMatchHandler | None = None
    error_state: str | None = None


class Settings(Strict):
    max_steps: int = Field(25, ge=1, le=1000)
    confidence_threshold: float = Field(0.7, ge=0.0, le=1.0)
    timezone: str = "UTC"
    max_message_chars: int = Field(4000, ge=1, le=1_000_000)
    classifier: str = Field("builtin", description="The intent classifier plugin: builtin, http, ...")
    classifier_config: dict[str, Any] = Field(default_factory=dict, description="The classifier's Config")
    history_messages: int = Field(
        0, ge=0, le=50, description="Messages in and out the context keeps (recent_messages) for model calls"
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone '{value}' (use an IANA name such as Europe/Berlin)") from exc
        return value


class Flow(Strict):
    """A whole flow document."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(None, alias="$schema", description="JSON Schema URL, for editors")
    flow_id: str = Field(pattern=FLOW_ID_PATTERN)
    tenant_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1)
    version: str = Field(pattern=SEMVER_PATTERN, description="Semantic version MAJOR.MINOR.PATCH")
    description: str | None = None
    initial_state: str
    states: dict[str, State] = Field(min_length=1)
    intents: dict[str, Intent] = Field(default_factory=dict)
    integrations: dict[str, Integration] = Field(default_factory=dict)
    global_handlers: GlobalHandlers = Field(default_factory=GlobalHandlers)
    variables: dict[str, Any] = Field(default_factory=dict)
    settings: Settings = Field(default_factory=Settings)
    plugins: list[str] = Field(default_factory=list, description="Plugins this flow needs")
    metadata: dict[str, Any] = Field(default_factory=dict)

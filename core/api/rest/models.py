"""The REST v2 request and response models: the edge's validation and the OpenAPI document's schemas.

Requests are validated with these models (``extra="forbid"``, so a misspelt field is an error, not a
silently ignored one). Responses of the management endpoints are built through them too; the turn's
reply is not (it is the engine's plain dict, serialised once with orjson): ``MessageReply`` describes it
for the OpenAPI document and the schema-conformance tests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from mcp_engine.api.inputs import Channel, StringMap, TenantId, UserId
from mcp_engine.flow.models import FLOW_ID_PATTERN, SEMVER_PATTERN

FlowId = Annotated[str, Field(pattern=FLOW_ID_PATTERN, description="The flow's id (SPEC §2).")]
Version = Annotated[str, Field(pattern=SEMVER_PATTERN, description="A semantic version MAJOR.MINOR.PATCH.")]
KeyId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^/]+$")]


class Strict(BaseModel):
    """Requests: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class Lenient(BaseModel):
    """Query strings: unknown parameters (cache busters, ``tenant_id``) are ignored."""

    model_config = ConfigDict(extra="ignore")


# --- errors -------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="A stable error code (mcp_engine.errors).")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- flows --------------------------------------------------------------------------------------


class FlowDocument(RootModel[dict[str, Any]]):
    """A flow document (SPEC §2). Checked by the engine's validator, which reports every problem at once."""


class Problem(BaseModel):
    severity: Literal["error", "warning"]
    pointer: str = Field(description="RFC 6901 JSON pointer into the document.")
    code: str
    message: str
    line: int | None = None
    column: int | None = None


class ValidationReport(BaseModel):
    valid: bool
    problems: list[Problem]


class FlowVersionSummary(BaseModel):
    tenant_id: str
    flow_id: str
    version: str
    name: str
    status: Literal["draft", "published"]
    created_at: float
    published_at: float | None = None


class FlowVersionOut(FlowVersionSummary):
    document: dict[str, Any]


class FlowCreated(FlowVersionOut):
    problems: list[Problem] = Field(description="Warnings found while validating (errors would be a 422).")


class FlowDetail(FlowVersionOut):
    """The published version (else the latest), with where the flow stands."""

    published_version: str | None
    latest_version: str
    version_count: int


class FlowList(BaseModel):
    flows: list[FlowVersionSummary] = Field(description="The latest-created version of each flow.")


class VersionList(BaseModel):
    flow_id: str
    versions: list[FlowVersionSummary] = Field(description="Oldest first.")


class GraphQuery(Lenient):
    format: Literal["mermaid", "dot", "svg", "json"] = Field(
        "mermaid",
        description="json: what each node and edge id of the DOT/SVG stands for (state, transition).",
    )


class StoredGraphQuery(GraphQuery):
    version: Version | None = Field(
        None, description="Draw this version (default: the published, else the latest)."
    )


# --- conversations ------------------------------------------------------------------------------


class Content(Strict):
    type: Literal["text", "event"] = "text"
    text: str = Field(description="The user's text; for an event its name, e.g. 'timeout'.")
    attributes: StringMap = Field(default_factory=dict)


class MessageHints(Strict):
    force_flow: FlowId | None = None
    priority: Literal["", "low", "normal", "high"] = Field(
        "",
        description="When the engine is saturated: high waits briefly for the next slot, low is shed first",
    )
    bypass_cache: bool = Field(
        False, description="Read the conversation and its flow version from the durable store, not caches"
    )


class MessageRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "demo",
                    "user_id": "user-1",
                    "channel": "web",
                    "content": {"type": "text", "text": "I want two large pizzas"},
                    "metadata": {"message_id": "m-1"},
                    "hints": {"force_flow": "pizza"},
                }
            ]
        }
    )

    tenant_id: TenantId | None = Field(None, description="Names the tenant when auth is off.")
    user_id: UserId = ""
    channel: Channel = "default"
    content: Content
    metadata: StringMap = Field(
        default_factory=dict, description="``message_id`` makes a retry return the stored reply."
    )
    hints: MessageHints | None = None
    user_profile: dict[str, Any] | None = Field(
        None,
        description="Merged into the conversation's user_profile (RFC 7386 merge patch: null removes a key)",
    )


class MessageOut(BaseModel):
    type: str
    text: str
    attributes: dict[str, Any]


class MessageReply(BaseModel):
    """The turn's reply: the gRPC ``ProcessMessageResponse`` fields in snake_case."""

    conversation_id: str
    current_state: str
    response: MessageOut = Field(description="The last message of the turn.")
    messages: list[MessageOut]
    context_updates: dict[str, Any]
    actions_performed: list[str]
    confidence_scores: dict[str, float]
    processing_time_ms: int
    ab_variant: str
    flow_id: str
    flow_version: str


class ConversationState(BaseModel):
    conversation_id: str
    tenant_id: str
    current_state: str | None
    flow_id: str | None
    flow_version: str | None
    ab_variant: str = Field("", description="The A/B variant of the current run, empty outside experiments.")
    user_profile: dict[str, Any] = Field(default_factory=dict, description="What messages set of the user.")
    context: dict[str, Any]


class HistoryQuery(Lenient):
    limit: int = Field(50, ge=1, le=500)
    before: int | None = Field(
        None, ge=1, le=2**63 - 1, description="A ``seq`` (from ``next_before``): older events."
    )


class HistoryPage(BaseModel):
    conversation_id: str
    events: list[dict[str, Any]] = Field(description="Newest first, each with its ``seq``.")
    next_before: int | None = Field(description="Pass as ``before`` for the next page; null on the last.")


# --- tenants, plugins, health -------------------------------------------------------------------


class TenantIn(Strict):
    """Fields given are set, fields left out keep their value (``null`` clears one)."""

    default_flow: FlowId | None = None
    enabled_plugins: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, description="Plugin or distribution names; null enables every installed plugin."
    )
    outbound_webhook: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)] | None = None
    webhook_secret: Annotated[str, Field(min_length=16, max_length=256, pattern=r"^\S+$")] | None = Field(
        None, description="Signs outbound webhook bodies (HMAC-SHA256); write-only, never shown back"
    )


class TenantOut(BaseModel):
    tenant_id: str
    default_flow: str | None
    enabled_plugins: list[str] | None
    outbound_webhook: str | None
    webhook_secret_set: bool = Field(description="Whether outbound webhook bodies are signed")


class KeyCreated(BaseModel):
    tenant_id: str
    key_id: str
    key: str = Field(description="Shown this once; only its hash is stored.")


class PluginOut(BaseModel):
    kind: str
    name: str
    provider: str = Field(description="The providing distribution (mcp-engine for the built-ins).")
    version: str
    plugin: str = Field(description="The plugin's name: its entry point (what tenants enable), or module.")
    description: str
    enabled: bool | None = Field(
        None, description="Whether the named tenant may use it (built-ins always); null when none is named."
    )


class SkippedPlugin(BaseModel):
    """An installed plugin that is not in use: it failed to load, or clashes with another."""

    distribution: str
    version: str
    plugin: str
    reason: str


class PluginList(BaseModel):
    plugins: list[PluginOut]
    skipped: list[SkippedPlugin]
    tenant_id: str | None = Field(None, description="The tenant the enabled flags are for.")
    enabled_plugins: list[str] | None = Field(
        None, description="That tenant's enabled_plugins; null enables every installed plugin."
    )


class Health(BaseModel):
    status: Literal["ok", "ready"]

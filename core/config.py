"""Engine settings from environment variables (the seed's names, SPEC §7) or a .env file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    grpc_port: int = Field(50051, alias="GRPC_PORT")
    http_port: int = Field(8002, alias="HTTP_PORT")
    postgres_uri: str | None = Field(None, alias="POSTGRES_URI")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    redis_prefix: str = Field("mcp", alias="MCP_REDIS_PREFIX", description="Prefix of every Redis key")
    postgres_schema: str = Field("public", alias="MCP_POSTGRES_SCHEMA")
    postgres_pool_size: int = Field(10, ge=1, alias="MCP_POSTGRES_POOL_SIZE")
    sqlite_path: str = Field("./mcp_engine.db", alias="MCP_SQLITE_PATH")
    max_parallel_executions: int = Field(100, ge=1, alias="MAX_PARALLEL_EXECUTIONS")
    state_execution_timeout_ms: int = Field(10_000, ge=1, alias="STATE_EXECUTION_TIMEOUT_MS")
    context_lock_timeout_ms: int = Field(5_000, ge=1, alias="CONTEXT_LOCK_TIMEOUT_MS")
    rules_backend: Literal["python", "durable"] = Field("python", alias="MCP_RULES_BACKEND")
    max_message_bytes: int = Field(64 * 1024, ge=1, alias="MCP_MAX_MESSAGE_BYTES")
    max_user_profile_bytes: int = Field(
        16 * 1024,
        ge=1,
        alias="MCP_MAX_USER_PROFILE_BYTES",
        description="A conversation's user_profile, as JSON",
    )
    event_sinks: str = Field(
        "",
        alias="MCP_EVENT_SINKS",
        description="Comma-separated sink names (a turn's events are kept in the store with the turn anyway)",
    )
    timer_poll_ms: int = Field(500, ge=10, alias="MCP_TIMER_POLL_MS")
    webhook_timeout_ms: int = Field(5000, ge=1, le=60_000, alias="MCP_WEBHOOK_TIMEOUT_MS")
    webhook_backoff_ms: int = Field(1000, ge=1, le=600_000, alias="MCP_WEBHOOK_BACKOFF_MS")
    webhook_max_attempts: int = Field(12, ge=1, le=100, alias="MCP_WEBHOOK_MAX_ATTEMPTS")
    compiled_flow_cache: int = Field(2_000, ge=1, alias="MCP_COMPILED_FLOW_CACHE")
    compiled_flow_cache_mb: int = Field(
        512,
        ge=1,
        alias="MCP_COMPILED_FLOW_CACHE_MB",
        description="Estimated size bound of the compiled flows",
    )
    max_context_bytes: int = Field(
        1024 * 1024, ge=1024, alias="MCP_MAX_CONTEXT_BYTES", description="A conversation's context, as JSON"
    )
    max_flow_bytes: int = Field(
        1024 * 1024, ge=1024, alias="MCP_MAX_FLOW_BYTES", description="A flow document, as JSON or YAML"
    )
    max_states: int = Field(2_000, ge=1, alias="MCP_MAX_STATES", description="States in one flow")
    max_transitions: int = Field(
        256, ge=1, alias="MCP_MAX_TRANSITIONS", description="Transitions of one state"
    )
    max_yaml_aliases: int = Field(
        1_000, ge=0, alias="MCP_MAX_YAML_ALIASES", description="Alias uses in one YAML document"
    )
    auth: Literal["on", "off"] | None = Field(
        None, alias="MCP_AUTH", description="Unset: on with POSTGRES_URI, off on the embedded default"
    )
    admin_key: SecretStr | None = Field(None, alias="MCP_ADMIN_KEY")  # SecretStr: never in a repr or log
    enable_ab_testing: bool = Field(
        True, alias="ENABLE_AB_TESTING", description="Allocate new runs to running experiments' variants"
    )
    enable_flow_versioning: bool = Field(
        True,
        alias="ENABLE_FLOW_VERSIONING",
        description="A run stays on the version it started with; off: every conversation moves to the "
        "published version at its next turn",
    )
    enable_visual_designer: bool = Field(
        True, alias="ENABLE_VISUAL_DESIGNER", description="serve's /playground page (off: 404)"
    )
    service_name: str = Field(
        "mcp-engine",
        min_length=1,
        max_length=100,
        alias="SERVICE_NAME",
        description="Names this deployment in every log record and in the mcp_engine_info metric",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", alias="MCP_EVENT_LOOP", description="serve's event loop; asyncio where uvloop is missing"
    )
    # What operators grant tenants, and the edge's limits (mcp_engine.security, docs/operators.md)
    grant_secrets: str | None = Field(
        None, alias="MCP_GRANT_SECRETS", description="tenant:NAME,NAME;*:NAME (secrets a tenant may use)"
    )
    grant_outbound: str | None = Field(
        None, alias="MCP_GRANT_OUTBOUND", description="tenant:ADDRESS,NETWORK;*:ADDRESS:PORT (URL policy)"
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1, alias="MCP_MAX_BODY_BYTES", description="A REST body's default limit per tenant"
    )
    metrics: Literal["public", "protected", "off"] | None = Field(
        None, alias="MCP_METRICS", description="/metrics: open, bearer token or admin key, or none"
    )
    metrics_token: SecretStr | None = Field(None, alias="MCP_METRICS_TOKEN")

    @property
    def auth_mode(self) -> Literal["on", "off"]:
        """``MCP_AUTH`` if set; else "on" for a PostgreSQL deployment (a server others reach) and "off" for
        the embedded SQLite default (one developer's machine), where serve warns loudly."""
        if self.auth is not None:
            return self.auth
        return "on" if self.postgres_uri else "off"

    @property
    def metrics_mode(self) -> Literal["public", "protected", "off"]:
        """``MCP_METRICS`` if set; else "protected" with auth on (``/metrics`` names every tenant's flows
        and integrations) and "public" with auth off, where nothing else is protected either."""
        if self.metrics is not None:
            return self.metrics
        return "protected" if self.auth_mode == "on" else "public"

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
    event_sinks: str = Field("store", alias="MCP_EVENT_SINKS", description="Comma-separated sink names")
    timer_poll_ms: int = Field(500, ge=10, alias="MCP_TIMER_POLL_MS")
    webhook_timeout_ms: int = Field(5000, ge=1, le=60_000, alias="MCP_WEBHOOK_TIMEOUT_MS")
    webhook_backoff_ms: int = Field(1000, ge=1, le=600_000, alias="MCP_WEBHOOK_BACKOFF_MS")
    webhook_max_attempts: int = Field(12, ge=1, le=100, alias="MCP_WEBHOOK_MAX_ATTEMPTS")
    compiled_flow_cache: int = Field(2_000, ge=1, alias="MCP_COMPILED_FLOW_CACHE")
    auth: Literal["on", "off"] | None = Field(
        None, alias="MCP_AUTH", description="Unset: on with POSTGRES_URI, off on the embedded default"
    )
    admin_key: SecretStr | None = Field(None, alias="MCP_ADMIN_KEY")  # SecretStr: never in a repr or log
    enable_ab_testing: bool = Field(
        True, alias="ENABLE_AB_TESTING", description="Allocate new runs to running experiments' variants"
    )
    enable_visual_designer: bool = Field(
        True, alias="ENABLE_VISUAL_DESIGNER", description="serve's /playground page (off: 404)"
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", alias="MCP_EVENT_LOOP", description="serve's event loop; asyncio where uvloop is missing"
    )

    @property
    def auth_mode(self) -> Literal["on", "off"]:
        """``MCP_AUTH`` if set; else "on" for a PostgreSQL deployment (a server others reach) and "off" for
        the embedded SQLite default (one developer's machine), where serve warns loudly."""
        if self.auth is not None:
            return self.auth
        return "on" if self.postgres_uri else "off"

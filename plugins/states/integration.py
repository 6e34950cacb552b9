"""``integration``: calls a declared integration and stores its mapped result."""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_engine import FlowAssets, Reference, RetryPolicy, StateType, TurnView, hookimpl
from mcp_engine.plugins.integrations.mapping import compile_response_mapping
from mcp_engine.plugins.states.error_handling import ErrorHandling, handler_references, handler_transitions

MAPPING_TARGETS = ("variables.", "slots.", "user_profile.")


class IntegrationCall(BaseModel):
    """What an integration state and the ``call_integration`` action share."""

    model_config = ConfigDict(extra="forbid")
    integration_id: str
    endpoint: str = Field("", description="A template joined to the integration's base_url")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    request_mapping: dict[str, str] = Field(
        default_factory=dict, description="Request field -> expression (query parameters for GET)"
    )
    response_mapping: dict[str, str] = Field(
        default_factory=dict, description="Context target (variables.x, slots.x) -> JSONPath in the response"
    )

    @field_validator("response_mapping")
    @classmethod
    def _targets_are_context_paths(cls, mapping: dict[str, str]) -> dict[str, str]:
        for target, path in mapping.items():
            if not target.startswith(MAPPING_TARGETS) or target.endswith("."):
                raise ValueError(f"target '{target}' must start with one of {', '.join(MAPPING_TARGETS)}")
            if not path.startswith("$"):
                raise ValueError(f"'{path}' for '{target}' is not a JSONPath (it must start with '$')")
        compile_response_mapping(mapping)  # a MappingError (a ValueError) names the target and path
        return mapping

    @classmethod
    def call_references(cls, call: "IntegrationCall") -> Iterator[Reference]:
        yield Reference("integration", call.integration_id, ("integration_id",))
        if call.endpoint:
            yield Reference("template", call.endpoint, ("endpoint",))
        for name, expression in call.request_mapping.items():
            yield Reference("expression", expression, ("request_mapping", name))
        scope = (call.integration_id, call.method, call.endpoint)
        for target, path in call.response_mapping.items():
            yield Reference("response_path", path, ("response_mapping", target), scope)


class IntegrationStateConfig(IntegrationCall):
    timeout_ms: int | None = Field(None, ge=1, le=120_000, description="Overrides the integration's")
    retry_config: RetryPolicy | None = Field(None, description="Overrides the integration's retry_policy")
    error_handling: ErrorHandling = Field(
        default_factory=dict,
        description="Per error kind (timeout, http_4xx, ...; 'default' for any other): a reply and the "
        "state to go to when the call fails so and none of the state's own transitions takes it",
    )


class IntegrationState(StateType):
    name = "integration"
    Config = IntegrationStateConfig
    description = "Calls an integration; integration_success / integration_error pick what follows."

    @classmethod
    def references(cls, config: IntegrationStateConfig) -> Iterator[Reference]:
        yield from IntegrationCall.call_references(config)
        yield from handler_references(config.error_handling)

    def implied_transitions(self) -> Sequence[Mapping[str, Any]]:
        return handler_transitions(self.config.error_handling)

    def prepare(self, assets: FlowAssets) -> None:
        from mcp_engine.plugins.integrations.calls import PreparedCall

        self.call = PreparedCall(self.config, assets, self.config.timeout_ms, self.config.retry_config)

    async def enter(self, turn: TurnView) -> None:
        await self.call.run(turn)


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [IntegrationState]

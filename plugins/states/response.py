"""``response``: renders one template (by channel, else ``default``, else the first) and emits it."""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import Reference, StateType, hookimpl


class ResponseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_templates: dict[str, str] = Field(
        min_length=1, description="Channel name (or 'default') -> Jinja2 template"
    )
    response_type: str = Field("text", description="Travels to the channel as a message attribute")
    typing_indicator: bool = False
    delay_ms: int | None = Field(None, ge=0, le=60_000, description="A hint for the channel; never slept")


class ResponseState(StateType):
    name = "response"
    Config = ResponseConfig
    description = "Sends a message, then follows its automatic transitions."

    @classmethod
    def references(cls, config: ResponseConfig) -> Iterator[Reference]:
        return template_references(config.response_templates)


def template_references(templates: dict[str, str]) -> Iterator[Reference]:
    """The templates of a ``response_templates`` block (shared with ``end``)."""
    for channel, template in templates.items():
        yield Reference("template", template, ("response_templates", channel))


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [ResponseState]

"""``response``: renders one template (by channel, else ``default``, else the first) and emits it, or,
with ``generate``, asks the Model Orchestrator for the reply and says the template when it cannot."""

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_engine import FlowAssets, Reference, StateType, TurnView, hookimpl
from mcp_engine.plugins.states.generate import Generate
from mcp_engine.plugins.states.personalization import Personalization, VariantChooser, also_true


class ResponseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response_templates: dict[str, str] = Field(
        min_length=1, description="Channel name (or 'default') -> Jinja2 template"
    )
    response_type: str = Field("text", description="Travels to the channel as a message attribute")
    typing_indicator: bool = False
    delay_ms: int | None = Field(None, ge=0, le=60_000, description="A hint for the channel; never slept")
    personalization: Personalization | None = Field(
        None,
        description="Template variants chosen by a user_profile field; true (the seed's flag) is the same "
        "as leaving it out: templates read user_profile wherever they name it",
        json_schema_extra=also_true,
    )

    @field_validator("personalization", mode="before")
    @classmethod
    def _seed_flag(cls, value: object) -> object:
        if value is False:
            raise ValueError(
                "personalization cannot be turned off: a template reads user_profile only where it names "
                "it ({{ user_profile.name }}), so write the templates without it"
            )
        return None if value is True else value

    generate: Generate | None = Field(
        None, description="Ask the Model Orchestrator for the reply; the template is the fallback"
    )


class ResponseState(StateType):
    name = "response"
    Config = ResponseConfig
    description = "Sends a message, then follows its automatic transitions."

    def prepare(self, assets: FlowAssets) -> None:
        self.templates = ChannelTemplates(self.config.response_templates, assets)
        personalization = self.config.personalization
        self.chooser = (
            None if personalization is None else VariantChooser(personalization, assets, ChannelTemplates)
        )

    async def enter(self, turn: TurnView) -> None:
        attributes = {"response_type": self.config.response_type}
        if self.config.typing_indicator:
            attributes["typing_indicator"] = "true"
        if self.config.delay_ms is not None:
            attributes["delay_ms"] = str(self.config.delay_ms)
        templates = (
            self.chooser.choose(turn.context) if self.chooser is not None else None
        ) or self.templates
        if self.config.generate is None:
            templates.emit(turn, **attributes)
            return
        text = await self.config.generate.reply(turn, templates.render(turn) or "")
        turn.emit(text, **attributes)

    @classmethod
    def references(cls, config: ResponseConfig) -> Iterator[Reference]:
        yield from template_references(config.response_templates)
        if config.personalization is not None:
            yield from config.personalization.references()
        if config.generate is not None:
            yield from config.generate.references()


class ChannelTemplates:
    """Templates by channel: the conversation's channel, else ``default``, else the first (SPEC §3)."""

    def __init__(self, templates: dict[str, str], assets: FlowAssets) -> None:
        self.by_channel = {channel: assets.template(text) for channel, text in templates.items()}
        self.fallback = self.by_channel.get("default") or next(iter(self.by_channel.values()), None)

    def render(self, turn: TurnView) -> str | None:
        template = self.by_channel.get(str(turn.context.get("channel") or ""), self.fallback)
        return None if template is None else turn.render(template)

    def emit(self, turn: TurnView, **attributes: str) -> None:
        text = self.render(turn)
        if text is not None:
            turn.emit(text, **attributes)


def template_references(templates: dict[str, str]) -> Iterator[Reference]:
    """The templates of a ``response_templates`` block (shared with ``end``)."""
    for channel, template in templates.items():
        yield Reference("template", template, ("response_templates", channel))


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [ResponseState]

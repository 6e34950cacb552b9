"""``slot_filling``: collects slots from messages, prompting for the first missing required one."""

from collections.abc import Iterator
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_engine import Reference, StateType, hookimpl


class SlotFillingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    required_slots: list[str] = Field(min_length=1)
    optional_slots: list[str] = Field(default_factory=list)
    validation_rules: dict[str, str] = Field(
        default_factory=dict, description="Slot -> rule, e.g. 'int:1..10', 'enum:small,large', 'date'"
    )
    prompts: dict[str, str] = Field(default_factory=dict, description="Slot -> template asking for it")
    retry_prompts: dict[str, str] = Field(default_factory=dict)
    max_retries: int = Field(3, ge=1, le=10)

    @model_validator(mode="after")
    def _slots_are_declared(self) -> Self:
        slots = set(self.required_slots) | set(self.optional_slots)
        missing = [s for s in self.required_slots if s not in self.prompts]
        if missing:
            raise ValueError(f"required slot(s) {', '.join(missing)} have no prompt in 'prompts'")
        for field in ("validation_rules", "prompts", "retry_prompts"):
            unknown = sorted(set(getattr(self, field)) - slots)
            if unknown:
                raise ValueError(
                    f"{field} names slot(s) {', '.join(unknown)} that are not in required/optional"
                )
        return self


class SlotFillingState(StateType):
    name = "slot_filling"
    Config = SlotFillingConfig
    consumes_input = True
    description = "Extracts slot values from messages and prompts for what is missing."

    @classmethod
    def references(cls, config: SlotFillingConfig) -> Iterator[Reference]:
        for field in ("required_slots", "optional_slots"):
            for i, slot in enumerate(getattr(config, field)):
                yield Reference("slot_collected", slot, (field, i))
        for slot, rule in config.validation_rules.items():
            yield Reference("slot_rule", rule, ("validation_rules", slot))
        for field in ("prompts", "retry_prompts"):
            for slot, template in getattr(config, field).items():
                yield Reference("template", template, (field, slot))


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [SlotFillingState]

"""``slot_filling``: collects slots from messages, prompting for the first missing required one."""

from collections.abc import Iterator
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_engine import FlowAssets, Reference, StateType, TurnView, hookimpl
from mcp_engine.plugins.extractors.slots import build_slot_specs, extract_slots


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

    def required_slots(self) -> tuple[str, ...]:
        return tuple(self.config.required_slots)

    def prepare(self, assets: FlowAssets) -> None:
        config = self.config
        self.slots = [
            *config.required_slots,
            *(s for s in config.optional_slots if s not in config.required_slots),
        ]
        self.specs = {
            spec.name: spec
            for spec in build_slot_specs(config.validation_rules, self.slots, assets.rule_kinds)
        }
        self.prompts = {slot: assets.template(text) for slot, text in config.prompts.items()}
        self.retry_prompts = {slot: assets.template(text) for slot, text in config.retry_prompts.items()}

    def _missing(self, turn: TurnView) -> list[str]:
        slots = turn.context.setdefault("slots", {})
        return [name for name in self.slots if slots.get(name) is None]

    def _next_required(self, turn: TurnView) -> str | None:
        slots = turn.context["slots"]
        return next((s for s in self.config.required_slots if slots.get(s) is None), None)

    def _extract(self, turn: TurnView, text: str, prompted: str | None) -> tuple[list[str], dict[str, str]]:
        missing = self._missing(turn)
        if not missing or not text.strip():
            return [], {}
        found = extract_slots(text, [self.specs[s] for s in missing], prompted, turn.extract_context())
        for slot, value in found.filled.items():
            turn.context["slots"][slot] = value
            turn.record("slot_filled", {"slot": slot, "value": value})
        return list(found.filled), found.invalid

    async def enter(self, turn: TurnView) -> None:
        """Extract from the turn's message (if it has one), then ask for the first missing required slot;
        a new run's first message, still to come, is not prompted for: it is the answer or gets the prompt."""
        event = turn.event
        if event is not None and event.get("type") == "message":
            self._extract(turn, str(event.get("text", "")), None)
        if turn.message_pending:
            turn.state_data["unasked"] = True
        else:
            self._prompt(turn)

    def _prompt(self, turn: TurnView, retry: bool = False) -> bool:
        slot = self._next_required(turn)
        if slot is None:
            return False
        template = (self.retry_prompts.get(slot) if retry else None) or self.prompts[slot]
        turn.emit(turn.render(template))
        return True

    async def receive(self, turn: TurnView) -> None:
        """Fill what the message gives; count an invalid answer to the prompted slot (SPEC §3)."""
        state = turn.state_data
        state["answer"] = None
        event = turn.event or {}
        if event.get("type") != "message":
            return
        unasked = state.pop("unasked", False)  # nothing was asked yet: an unusable text is not a retry
        prompted = self._next_required(turn)
        filled, invalid = self._extract(turn, str(event.get("text", "")), prompted)
        if filled or prompted is None or unasked:
            state["answer"] = "prompt"
            return
        retries = state.setdefault("retries", {})
        retries[prompted] = retries.get(prompted, 0) + 1
        reason = invalid.get(prompted, "not understood")
        turn.record("slot_invalid", {"slot": prompted, "reason": reason, "attempt": retries[prompted]})
        if retries[prompted] >= self.config.max_retries:
            turn.fail("retries_exhausted", f"slot '{prompted}': retries exhausted")
        else:
            state["answer"] = "retry"

    async def respond(self, turn: TurnView) -> bool:
        """No transition held: ask for the next missing slot, or again for an invalid one."""
        answer = turn.state_data.pop("answer", None)
        return answer is not None and self._prompt(turn, retry=answer == "retry")

    async def resume(self, turn: TurnView) -> bool:
        """Back from a digression: ask for the slot still missing (not what was asked on entry)."""
        return self._prompt(turn)


@hookimpl
def mcp_engine_state_types() -> list[type[StateType]]:
    return [SlotFillingState]

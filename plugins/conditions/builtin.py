"""The eight built-in conditions of SPEC §4."""

from collections.abc import Iterator

from mcp_engine import ERROR_KINDS, ConditionType, Reference, hookimpl


class AnyInput(ConditionType):
    name = "any_input"
    kind = "input"
    description = "A message arrived."


class IntentMatch(ConditionType):
    name = "intent_match"
    kind = "input"
    value = "required"
    description = "The classified intent equals condition_value with confidence at or above the threshold."

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        if value:
            yield Reference("intent", value)


class LowConfidence(ConditionType):
    name = "low_confidence"
    kind = "input"
    description = "The classified confidence is below the threshold."


class Timeout(ConditionType):
    name = "timeout"
    kind = "input"
    description = "A timeout event arrived for this state."


class SlotFilled(ConditionType):
    name = "slot_filled"
    value = "optional"
    description = "Slot condition_value is filled; with no value, every required slot of the state is."

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        if value:
            yield Reference("slot_used", value)


class IntegrationSuccess(ConditionType):
    name = "integration_success"
    description = "This state's last integration call succeeded."


class IntegrationErrorCondition(ConditionType):
    name = "integration_error"
    value = "optional"
    description = f"This state's last integration call failed (optionally of a kind: {', '.join(ERROR_KINDS)})."


class Expression(ConditionType):
    name = "expression"
    description = "The transition's expression evaluates true."


BUILTIN_CONDITIONS: tuple[type[ConditionType], ...] = (
    AnyInput,
    IntentMatch,
    LowConfidence,
    Timeout,
    SlotFilled,
    IntegrationSuccess,
    IntegrationErrorCondition,
    Expression,
)


@hookimpl
def mcp_engine_condition_types() -> list[type[ConditionType]]:
    return [*BUILTIN_CONDITIONS]

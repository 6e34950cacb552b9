"""The eight built-in conditions of SPEC §4, written in the rule vocabulary over the engine's facts.

Each says its condition through ``ConditionType.rule`` (see ``mcp_engine.rulesets.ruleset`` for the
facts), exactly as a plugin would, so both rules backends evaluate the built-ins natively.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mcp_engine import ERROR_KINDS, ConditionType, Reference, RuleContext, hookimpl


class AnyInput(ConditionType):
    name = "any_input"
    kind = "input"
    description = "A message arrived."

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        return {"input": True}


class IntentMatch(ConditionType):
    name = "intent_match"
    kind = "input"
    value = "required"
    description = "The classified intent equals condition_value with confidence at or above the threshold."

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        if value:
            yield Reference("intent", value)

    @classmethod
    def excludes(cls, value: str | None, other: type[ConditionType], other_value: str | None) -> bool:
        """One intent is classified per message, and at or above the threshold, never below it."""
        return (other is IntentMatch and value != other_value) or other is LowConfidence

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        if not value:
            raise ValueError("intent_match needs the intent's name in condition_value")
        return {"$and": [{"intent": value}, {"$gte": {"confidence": ctx.confidence_threshold}}]}


class LowConfidence(ConditionType):
    name = "low_confidence"
    kind = "input"
    description = "The classified confidence is below the threshold."

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        return {"$lt": {"confidence": ctx.confidence_threshold}}


class Timeout(ConditionType):
    name = "timeout"
    kind = "input"
    description = "A timeout event arrived for this state."

    @classmethod
    def excludes(cls, value: str | None, other: type[ConditionType], other_value: str | None) -> bool:
        """A timeout is not a message, so nothing is classified."""
        return other in (AnyInput, IntentMatch, LowConfidence)

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        return {"event_type": "timeout"}


class SlotFilled(ConditionType):
    name = "slot_filled"
    value = "optional"
    description = "Slot condition_value is filled; with no value, every required slot of the state is."

    @classmethod
    def value_references(cls, value: str | None) -> Iterator[Reference]:
        if value:
            yield Reference("slot_used", value)

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        """Filled means not null; with no value, every slot this state requires is."""
        slots = (value,) if value else ctx.required_slots
        if not slots:
            return ctx.NEVER
        return {"$and": [{"$ex": {ctx.field(("slots", slot), "any"): 1}} for slot in slots]}


class IntegrationSuccess(ConditionType):
    name = "integration_success"
    description = "This state's last integration call succeeded."

    @classmethod
    def excludes(cls, value: str | None, other: type[ConditionType], other_value: str | None) -> bool:
        return other is IntegrationErrorCondition

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        return {"integration": "success"}


class IntegrationErrorCondition(ConditionType):
    name = "integration_error"
    value = "optional"
    description = (
        f"This state's last integration call failed (optionally of a kind: {', '.join(ERROR_KINDS)})."
    )

    @classmethod
    def excludes(cls, value: str | None, other: type[ConditionType], other_value: str | None) -> bool:
        """A failed call has one error kind."""
        return other is IntegrationErrorCondition and bool(value and other_value and value != other_value)

    @classmethod
    def validate_value(cls, value: str) -> None:
        if value not in ERROR_KINDS:
            raise ValueError(f"unknown integration error kind '{value}' (known: {', '.join(ERROR_KINDS)})")

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        failed = {"integration": "error"}
        return {"$and": [failed, {"integration_error": value}]} if value else failed


class Expression(ConditionType):
    name = "expression"
    description = "The transition's expression evaluates true."
    reads_expression = True

    @classmethod
    def rule(cls, value: str | None, ctx: RuleContext) -> dict[str, Any]:
        if ctx.transition.expression is None:
            raise ValueError("condition 'expression' needs an expression")
        return ctx.expression(ctx.transition.expression)


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

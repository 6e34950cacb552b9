"""``set_variable`` and ``clear_variable``: change flow variables."""

import copy
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_engine import Action, FlowAssets, Reference, TurnView, hookimpl

VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class SetVariableConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=VARIABLE_NAME)
    value: Any = None
    expression: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _value_or_expression(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("value" in data) == ("expression" in data):
            raise ValueError("set_variable takes exactly one of 'value' or 'expression'")
        return data


class SetVariable(Action):
    name = "set_variable"
    Config = SetVariableConfig

    @classmethod
    def references(cls, config: SetVariableConfig) -> Iterator[Reference]:
        if config.expression is not None:
            yield Reference("expression", config.expression, ("expression",))

    def prepare(self, assets: FlowAssets) -> None:
        self.compute = (
            assets.expression(self.config.expression) if self.config.expression is not None else None
        )

    async def run(self, turn: TurnView) -> None:
        value = self.compute(turn.namespace()) if self.compute else copy.deepcopy(self.config.value)
        turn.context.setdefault("variables", {})[self.config.name] = value


class ClearVariableConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=VARIABLE_NAME)


class ClearVariable(Action):
    name = "clear_variable"
    Config = ClearVariableConfig

    async def run(self, turn: TurnView) -> None:
        turn.context.setdefault("variables", {}).pop(self.config.name, None)


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [SetVariable, ClearVariable]

"""``set_variable`` and ``clear_variable``: change flow variables."""

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_engine import Action, Reference, hookimpl

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


class ClearVariableConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=VARIABLE_NAME)


class ClearVariable(Action):
    name = "clear_variable"
    Config = ClearVariableConfig


@hookimpl
def mcp_engine_actions() -> list[type[Action]]:
    return [SetVariable, ClearVariable]

"""A response state's ``personalization``: template variants chosen by a field of the user's profile.

``{"profile_field": "tier", "variants": {"gold": {"default": "Welcome back, {{ user_profile.name }}!"}}}``:
a conversation whose ``user_profile.tier`` is "gold" gets that variant's templates (by channel, as
``response_templates``), any other value or none the state's own ``response_templates``. The variants are
compiled with the flow, so a turn costs one profile lookup and one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine import FlowAssets, Reference

T = TypeVar("T")
FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class Personalization(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile_field: str = Field(
        pattern=FIELD_PATTERN, description="The user_profile field that picks a variant (dotted: nested)"
    )
    variants: dict[str, dict[str, str]] = Field(
        min_length=1,
        description="A value of that field -> templates by channel (as response_templates); "
        "numbers and booleans are written as text ('3', 'true')",
    )

    def references(self) -> Iterator[Reference]:
        for value, templates in self.variants.items():
            for channel, template in templates.items():
                yield Reference("template", template, ("personalization", "variants", value, channel))


class VariantChooser(Generic[T]):
    """The compiled variants (each made by ``build`` from its templates): which one a conversation's
    profile picks (None: the state's own)."""

    def __init__(
        self, config: Personalization, assets: FlowAssets, build: Callable[[dict[str, str], FlowAssets], T]
    ) -> None:
        self.path = tuple(config.profile_field.split("."))
        self.variants = {value: build(templates, assets) for value, templates in config.variants.items()}

    def choose(self, context: Mapping[str, Any]) -> T | None:
        value: Any = context.get("user_profile")
        for part in self.path:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        if value is None or isinstance(value, dict | list):
            return None
        return self.variants.get(_as_text(value))


def also_true(schema: dict[str, Any]) -> None:
    """The JSON Schema of the field also takes ``true``, the seed's flag (the same as no variants)."""
    schema.setdefault("anyOf", []).append({"const": True})


def _as_text(value: Any) -> str:
    """A profile value as a variant's key: JSON's spelling of booleans, whole numbers without ".0" (gRPC's
    Struct turns every number into a double)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

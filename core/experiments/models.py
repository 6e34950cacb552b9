"""The experiment document (what ``POST /v2/experiments`` takes) and the names derived from it.

An experiment targets one flow and splits its new runs among variants whose percentages sum to 100.
A variant's ``modifications`` pin a flow version, patch the flow (RFC 7386 merge patch) and/or set
variables; a variant without modifications runs the published version, as the control usually does.

A patched variant runs a flow version of its own, named by the base version with build metadata:
``1.2.0+<experiment>.<variant>`` (semver build metadata is ``[0-9A-Za-z-]`` identifiers split by dots,
hence the experiment and variant name patterns). That name goes wherever a version goes (the
conversation's ``flow_version``, a sub-flow's return frame), so every turn of the run resolves the same
patched flow, in any engine process, through the flow catalogue.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_engine.flow.models import FLOW_ID_PATTERN, SEMVER_PATTERN

EXPERIMENT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
VARIANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
SUM_TOLERANCE = 1e-6  # percentages are floats: 33.333333 + 33.333333 + 33.333334 is 100
FIXED_FIELDS = ("flow_id", "tenant_id", "version")  # what a merge patch may not change

ExperimentId = Annotated[
    str,
    Field(pattern=EXPERIMENT_ID_PATTERN, description="Lower-case letters, digits and '-' (up to 64)."),
]
VariantName = Annotated[
    str, Field(pattern=VARIANT_PATTERN, description="Lower-case letters, digits and '-' (up to 32).")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Modifications(Strict):
    """What a variant changes; all optional, and they combine (a patch applies to the pinned version)."""

    flow_version: str | None = Field(
        None,
        pattern=SEMVER_PATTERN,
        description="Run this stored version of the flow instead of the published one.",
    )
    merge_patch: dict[str, Any] | None = Field(
        None,
        description="An RFC 7386 merge patch of the flow document (e.g. other response templates); "
        "applied to the version published when the experiment starts, or to flow_version.",
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Set at the start of each run, over the flow's own variables."
    )


class Variant(Strict):
    name: VariantName
    percentage: float = Field(ge=0, le=100, description="The share of new runs; all variants sum to 100.")
    description: str = Field("", max_length=2000)
    modifications: Modifications = Field(default_factory=Modifications)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExperimentDefinition(Strict):
    """An experiment document (SPEC §8)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "experiment_id": "short-greeting",
                    "flow_id": "pizza",
                    "name": "A shorter greeting",
                    "variants": [
                        {"name": "control", "percentage": 50},
                        {
                            "name": "short",
                            "percentage": 50,
                            "modifications": {
                                "merge_patch": {
                                    "states": {
                                        "greeting": {"config": {"response_templates": {"default": "Hi!"}}}
                                    }
                                }
                            },
                        },
                    ],
                }
            ]
        },
    )

    experiment_id: ExperimentId
    tenant_id: str | None = Field(None, description="The owner; must be the caller's tenant if given.")
    flow_id: str = Field(pattern=FLOW_ID_PATTERN, description="The flow whose new runs are split.")
    name: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)
    control: VariantName | None = Field(
        None, description="The variant the others are compared with (default: the first)."
    )
    variants: list[Variant] = Field(min_length=2, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def control_variant(self) -> str:
        return self.control or self.variants[0].name

    def stored(self) -> dict[str, Any]:
        """The document as it is stored: defaults filled in, the control named, no tenant_id."""
        document = self.model_dump(mode="json", exclude={"tenant_id"})
        document["control"] = self.control_variant
        return document


def derived_version(base: str, experiment_id: str, variant: str) -> str:
    """The version a patched variant runs: ``1.2.0+short-greeting.short``."""
    return f"{base}+{experiment_id}.{variant}"


def parse_derived(version: str) -> tuple[str, str, str] | None:
    """(base version, experiment id, variant) of a derived version, else None."""
    base, plus, tag = version.partition("+")
    experiment_id, dot, variant = tag.partition(".")
    if not plus or not dot or not experiment_id or not variant:
        return None
    return base, experiment_id, variant

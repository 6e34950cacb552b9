"""The REST models of ``/v2/experiments``; the document itself is ``ExperimentDefinition`` and the
results ``ExperimentResults`` (both of ``mcp_engine.experiments``), so the API and the engine share one
definition of each."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from mcp_engine.api.rest.models import FlowId, Lenient, Problem
from mcp_engine.experiments.models import Modifications


class ExperimentDocument(RootModel[dict[str, Any]]):
    """An experiment document (its schema: ``ExperimentDefinition``). Checked by the engine, which
    reports every problem at once (422)."""


class CreateQuery(Lenient):
    start: bool = Field(False, description="Start it at once (then a running one on the flow is an error).")


class ListQuery(Lenient):
    status: Literal["draft", "running", "stopped"] | None = None
    flow_id: FlowId | None = None


class VariantOut(BaseModel):
    name: str
    percentage: float
    description: str
    modifications: Modifications
    metadata: dict[str, Any]
    runs_on: str | None = Field(
        description="The flow version its runs use: the pinned one, or the patched one (a derived "
        "version, fixed at start); null: the flow's published version."
    )


class ExperimentOut(BaseModel):
    tenant_id: str
    experiment_id: str
    flow_id: str
    name: str
    description: str
    control: str
    variants: list[VariantOut]
    metadata: dict[str, Any]
    status: Literal["draft", "running", "stopped"]
    created_at: float
    started_at: float | None
    stopped_at: float | None


class ExperimentCreated(ExperimentOut):
    problems: list[Problem] = Field(description="Warnings found while checking (errors would be a 422).")


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut] = Field(description="Oldest first.")

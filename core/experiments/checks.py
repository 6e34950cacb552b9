"""Checking an experiment document, and whether an experiment can run: every problem at once, each with
its JSON pointer into the experiment document (as the flow validator does for flows).

Two passes. The document's own shape (``check_document``): its schema, the percentages summing to 100,
unique variant names, a control that names a variant; these need no store. Then what it refers to
(``plan_runs``), in the tenant's view: the flow and every pinned version exist, variants that run the
published version have one, each merge-patched flow validates (its problems reported under the patch's
pointer), and no other experiment runs on the flow. ``plan_runs`` also says what a start fixes: the base
version of each patched variant and its validated patched flow, so the start compiles it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mcp_engine.experiments.merge_patch import merge_patch
from mcp_engine.experiments.models import FIXED_FIELDS, SUM_TOLERANCE, ExperimentDefinition, Variant
from mcp_engine.flow.checks import pydantic_problems
from mcp_engine.flow.problems import Problem, pointer
from mcp_engine.flow.validate import ValidationResult
from mcp_engine.runtime.catalogue import FlowCatalogue
from mcp_engine.store.base import FlowVersion


def check_document(document: Any) -> tuple[ExperimentDefinition | None, list[Problem]]:
    """The definition (None when its schema fails) and the problems of the document's own shape."""
    if not isinstance(document, dict):
        return None, [Problem("error", "", "an experiment document must be a JSON object", "schema")]
    problems = _shape_problems(document)
    try:
        return ExperimentDefinition.model_validate(document), problems
    except ValidationError as exc:
        return None, [*pydantic_problems(exc), *problems]


def _shape_problems(document: dict[str, Any]) -> list[Problem]:
    """What the schema cannot say, checked on the raw document so that it shows beside schema errors."""
    variants = document.get("variants")
    if not isinstance(variants, list):
        return []
    problems: list[Problem] = []
    shares = [v.get("percentage") for v in variants if isinstance(v, dict)]
    numbers = [s for s in shares if isinstance(s, int | float) and not isinstance(s, bool)]
    if len(numbers) == len(variants) and variants and abs(sum(numbers) - 100) > SUM_TOLERANCE:
        problems.append(
            Problem(
                "error",
                "/variants",
                f"the variants' percentages sum to {sum(numbers):g}, not 100",
                "percentages",
            )
        )
    names = [v.get("name") if isinstance(v, dict) else None for v in variants]
    for i, name in enumerate(names):
        if isinstance(name, str) and name in names[:i]:
            problems.append(
                Problem(
                    "error", pointer("variants", i, "name"), f"variant '{name}' is named twice", "duplicate"
                )
            )
    control = document.get("control")
    if isinstance(control, str) and control not in names:
        known = ", ".join(n for n in names if isinstance(n, str))
        problems.append(
            Problem("error", "/control", f"'{control}' is not one of the variants ({known})", "reference")
        )
    return problems


@dataclass
class RunPlan:
    """What ``plan_runs`` found: its problems, and for each merge-patched variant the version its patch
    applies to and the validated patched flow."""

    problems: list[Problem] = field(default_factory=list)
    bases: dict[str, str] = field(default_factory=dict)
    patched: dict[str, ValidationResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


async def plan_runs(
    catalogue: FlowCatalogue,
    tenant_id: str,
    definition: ExperimentDefinition,
    running: list[str],
    starting: bool,
) -> RunPlan:
    """Check what ``definition`` refers to, as it would run now. ``running``: the other experiments
    running on its flow (an error when ``starting``, else a warning: it cannot start until they stop)."""
    plan = RunPlan()
    flow_id = definition.flow_id
    for other in running:
        plan.problems.append(
            Problem(
                "error" if starting else "warning",
                "/flow_id",
                f"experiment '{other}' is already running on flow '{flow_id}'; one experiment splits a flow's"
                " runs at a time: stop it first",
                "overlap",
            )
        )
    versions = {v.version: v for v in await catalogue.store.list_versions(tenant_id, flow_id)}
    if not versions:
        plan.problems.append(
            Problem("error", "/flow_id", f"tenant '{tenant_id}' has no flow '{flow_id}'", "reference")
        )
        return plan
    published = next((v.version for v in versions.values() if v.status == "published"), None)
    for i, variant in enumerate(definition.variants):
        await _plan_variant(catalogue, tenant_id, plan, i, variant, versions, published)
    return plan


async def _plan_variant(
    catalogue: FlowCatalogue,
    tenant_id: str,
    plan: RunPlan,
    index: int,
    variant: Variant,
    versions: dict[str, FlowVersion],
    published: str | None,
) -> None:
    changes = variant.modifications
    at = pointer("variants", index, "modifications")
    any_flow = next(iter(versions.values()))
    flow = f"flow '{any_flow.flow_id}'"
    if changes.flow_version is not None and changes.flow_version not in versions:
        known = ", ".join(versions)
        plan.problems.append(
            Problem(
                "error",
                at + "/flow_version",
                f"{flow} has no version {changes.flow_version} (it has {known})",
                "reference",
            )
        )
        return
    base = changes.flow_version or published
    if base is None:
        where = at + "/merge_patch" if changes.merge_patch is not None else pointer("variants", index)
        plan.problems.append(
            Problem(
                "error",
                where,
                f"{flow} has no published version for variant '{variant.name}' to run: publish one or pin"
                " modifications.flow_version",
                "unpublished",
            )
        )
        return
    patch = changes.merge_patch
    if patch is None:
        return
    fixed = [name for name in FIXED_FIELDS if name in patch]
    for name in fixed:
        plan.problems.append(
            Problem(
                "error",
                f"{at}/merge_patch/{name}",
                f"a merge patch may not change the flow's {name}",
                "patch",
            )
        )
    if fixed:
        return
    result = await catalogue.validate(tenant_id, merge_patch(versions[base].document, patch))
    for problem in result.errors:
        plan.problems.append(
            Problem(
                "error",
                at + "/merge_patch" + problem.pointer,
                f"the patched flow ({flow} {base}) at {problem.pointer or '/'}: {problem.message}",
                problem.code,
            )
        )
    if result.ok:
        plan.bases[variant.name] = base
        plan.patched[variant.name] = result

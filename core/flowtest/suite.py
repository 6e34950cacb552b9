"""A whole test run: test files on disk (``mcp-engine test``), or cases posted for a stored flow (REST).

Either way the flows come as a ``FlowSet`` (the flow under test and its tenant's other flows, for
sub-flows), every case runs on its own throwaway engine, and one ``Coverage`` spans the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_engine.config import EngineSettings
from mcp_engine.errors import FlowNotFound, InvalidInput
from mcp_engine.flow.validate import validate_data
from mcp_engine.flowtest.coverage import Coverage
from mcp_engine.flowtest.files import Folder, find_test_files, load_test, unknown_names
from mcp_engine.flowtest.harness import FlowSet, SetupFailed
from mcp_engine.flowtest.report import CaseResult, FileProblem, TestReport
from mcp_engine.flowtest.runner import run_cases
from mcp_engine.flowtest.spec import CasesBody
from mcp_engine.registry import Registry
from mcp_engine.store.base import FlowVersion, Store


async def run_paths(paths: list[Path], registry: Registry, settings: EngineSettings) -> TestReport:
    """Run the test files named or found under ``paths``; coverage spans every flow beside them."""
    files, problems = find_test_files(paths)
    folders: dict[Path, Folder] = {}
    coverage = Coverage()
    results: list[CaseResult] = []
    for path in files:
        folder = folders.get(path.parent)
        if folder is None:
            folder = folders[path.parent] = Folder.load(path.parent, registry)
            problems += folder.problems
            coverage.include(flow for _, flow in folder.flows.values())
        loaded, found = load_test(path, folder)
        problems += found
        if loaded is not None:
            try:
                results += await run_cases(
                    loaded.spec, loaded.flows, registry, settings, coverage, str(path), loaded.locate
                )
            except SetupFailed as exc:
                problems.append(FileProblem(file=str(path), pointer="", message=str(exc), code="flow-setup"))
    return TestReport.of(results, problems, coverage.report())


async def run_posted(
    body: CasesBody, flows: FlowSet, registry: Registry, settings: EngineSettings
) -> TestReport:
    """Run posted cases (``POST /v2/flows/{flow_id}/test``); coverage spans the flows of the set. Names
    no flow declares are ``InvalidInput`` with every problem (a pointer into the body each)."""
    problems = [p.to_dict() for p in unknown_names(body, flows)]
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the test cases", {"problems": problems})
    coverage = Coverage()
    coverage.include(flows.models)
    try:
        results = await run_cases(body, flows, registry, settings, coverage)
    except SetupFailed as exc:
        raise InvalidInput(str(exc), {"flow_id": flows.flow_id}) from None
    return TestReport.of(results, [], coverage.report())


async def stored_flow_set(
    store: Store,
    registry: Registry,
    tenant_id: str,
    flow_id: str,
    version: str | None = None,
    document: dict[str, Any] | None = None,
) -> FlowSet:
    """A flow of the tenant (``document``; else the stored ``version``, else the published one, else the
    latest) and the published versions of the tenant's other flows that validate (its sub-flows).
    ``FlowNotFound`` when there is no such flow or version, ``FlowValidationError`` for a bad document."""
    if document is None:
        document = (await _stored(store, tenant_id, flow_id, version)).document
    models = [validate_data(document, registry).raise_for_errors()]
    others = []
    for listed in await store.list_flows(tenant_id):
        published = await store.published(tenant_id, listed.flow_id) if listed.flow_id != flow_id else None
        result = validate_data(published.document, registry) if published is not None else None
        if published is not None and result is not None and result.flow is not None and result.ok:
            others.append(published.document)  # one that no longer validates could not run as a sub-flow
            models.append(result.flow)
    return FlowSet(document, others, models)


async def _stored(store: Store, tenant_id: str, flow_id: str, version: str | None) -> FlowVersion:
    if version is not None:
        found = await store.get_flow_version(tenant_id, flow_id, version)
    else:
        found = await store.published(tenant_id, flow_id)
        if found is None:
            versions = await store.list_versions(tenant_id, flow_id)
            found = versions[-1] if versions else None
    if found is None:
        which = f"version {version} " if version else ""
        raise FlowNotFound(f"flow '{flow_id}' {which}not found", {"flow_id": flow_id})
    return found

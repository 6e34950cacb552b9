"""``ExperimentService``: an engine's experiments, from the document to the results, and the variant of
each new run.

Management (REST, CLI): create (checked, every problem at once), list, get, start, stop, results.
A start checks again what the experiment refers to (the published version may have changed since it was
created), fixes each merge-patched variant's base version, records that in the store, and compiles the
patched flows there and then in the flow catalogue, keyed by their derived version.

The turn (``new_run``): a new run's one store lookup returns its flow's published version together with
the experiment running on it (``Store.published_with_experiment``), so an experiment adds no round trip,
and a start or stop in any engine process is seen by the next new run in every process: the cached
running experiment (per flow) is used only while the store still names it. ``enabled`` false
(``ENABLE_AB_TESTING=false``) turns allocation off: new runs get the published version; runs allocated
before keep their variant to their end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mcp_engine.errors import ExperimentNotFound, ExperimentOverlap, ExperimentValidationError
from mcp_engine.experiments.allocation import ActiveExperiment, Assignment
from mcp_engine.experiments.checks import check_document, plan_runs
from mcp_engine.experiments.merge_patch import merge_patch
from mcp_engine.experiments.models import ExperimentDefinition, derived_version, parse_derived
from mcp_engine.experiments.results import ExperimentResults, summarize
from mcp_engine.flow.problems import Problem
from mcp_engine.runtime.catalogue import FlowCatalogue
from mcp_engine.runtime.compiled import CompiledFlow
from mcp_engine.runtime.lookups import StampedLookups
from mcp_engine.store.base import ExperimentRecord, Store

ALLOCATION_OFF = (
    "allocation is off in this engine (ENABLE_AB_TESTING=false): it starts no new runs in variants"
)


class ExperimentService:
    def __init__(
        self,
        store: Store,
        catalogue: FlowCatalogue,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        lookups: StampedLookups | None = None,
    ) -> None:
        self.store, self.catalogue, self.enabled = store, catalogue, enabled
        self.lookups = lookups or StampedLookups(store)
        self._clock = clock
        self._running: dict[tuple[str, str], ActiveExperiment] = {}  # (tenant, flow) -> its experiment
        catalogue.derive_versions(self._derived_document)

    # --- management -----------------------------------------------------------------------------

    async def create(
        self, tenant_id: str, document: Any, start: bool = False
    ) -> tuple[ExperimentRecord, list[Problem], bool]:
        """Check and store a draft (and start it, with ``start``): the record, the warnings, and whether
        this exact document was stored already. ``ExperimentValidationError`` lists every problem."""
        definition, problems = check_document(document)
        if definition is not None:
            plan = await plan_runs(
                self.catalogue,
                tenant_id,
                definition,
                await self._others_running(tenant_id, definition),
                start,
            )
            problems += plan.problems
        if definition is None or any(p.severity == "error" for p in problems):
            raise ExperimentValidationError(problems)
        record = ExperimentRecord(
            tenant_id,
            definition.experiment_id,
            definition.flow_id,
            definition.stored(),
            "draft",
            self._clock(),
        )
        stored, existed = await self.store.create_experiment(record)
        if start:
            stored = await self.start(tenant_id, definition.experiment_id)
        return stored, problems, existed

    async def of_tenant(self, tenant_id: str) -> list[ExperimentRecord]:
        """The tenant's experiments, oldest first."""
        return await self.store.list_experiments(tenant_id)

    async def get(self, tenant_id: str, experiment_id: str) -> ExperimentRecord:
        record = await self.store.get_experiment(tenant_id, experiment_id)
        if record is None:
            raise ExperimentNotFound(
                f"experiment '{experiment_id}' not found", {"experiment_id": experiment_id}
            )
        return record

    async def start(self, tenant_id: str, experiment_id: str) -> ExperimentRecord:
        """Start splitting the flow's new runs (a running experiment is returned as it is). Its merge
        patches apply to the version published now (or the one they pin), and are compiled now."""
        record = await self.get(tenant_id, experiment_id)
        if record.status != "draft":
            return await self.store.start_experiment(tenant_id, experiment_id, record.bases, self._clock())
        definition = ExperimentDefinition.model_validate(record.document)
        plan = await plan_runs(
            self.catalogue, tenant_id, definition, await self._others_running(tenant_id, definition), True
        )
        if not plan.ok:
            raise ExperimentValidationError(plan.problems)
        try:
            started = await self.store.start_experiment(tenant_id, experiment_id, plan.bases, self._clock())
        except ExperimentOverlap as exc:  # another process started one on the flow a moment ago
            raise ExperimentValidationError([Problem("error", "/flow_id", exc.message, "overlap")]) from None
        for name, validated in plan.patched.items():
            version = derived_version(plan.bases[name], experiment_id, name)
            await self.catalogue.prepare(tenant_id, record.flow_id, version, validated)
        return started

    async def stop(self, tenant_id: str, experiment_id: str) -> ExperimentRecord:
        """Stop allocating; runs already in a variant keep it to their end."""
        return await self.store.stop_experiment(tenant_id, experiment_id, self._clock())

    async def results(self, tenant_id: str, experiment_id: str) -> ExperimentResults:
        record = await self.get(tenant_id, experiment_id)
        counts = await self.store.experiment_counts(tenant_id, experiment_id)
        notes = [] if self.enabled else [ALLOCATION_OFF]
        return summarize(record, counts, notes)

    async def _others_running(self, tenant_id: str, definition: ExperimentDefinition) -> list[str]:
        return [
            r.experiment_id
            for r in await self.store.list_experiments(tenant_id)
            if r.flow_id == definition.flow_id
            and r.status == "running"
            and r.experiment_id != definition.experiment_id
        ]

    # --- the turn -------------------------------------------------------------------------------

    async def new_run(
        self,
        tenant_id: str,
        flow_id: str,
        user_id: str,
        conversation_id: str,
        stamp: str | None = None,
        fresh: bool = False,
    ) -> tuple[CompiledFlow, Assignment | None]:
        """The compiled flow a new run of ``flow_id`` uses, and its variant when an experiment runs on
        the flow; allocated by ``user_id``, else by ``conversation_id``. ``stamp``: the catalogue's, for
        the cached lookups (``StampedLookups``; None: ask the store). ``fresh``: the flow version is also
        read from the store, not the catalogue's caches (the ``bypass_cache`` hint)."""
        if not self.enabled:
            version = await self.lookups.get(
                ("published", tenant_id, flow_id),
                stamp,
                lambda: self.store.published_version(tenant_id, flow_id),
            )
            return await self.catalogue.compiled_published(tenant_id, flow_id, version, fresh), None
        published, running = await self.lookups.get(
            ("published with experiment", tenant_id, flow_id),
            stamp,
            lambda: self.store.published_with_experiment(tenant_id, flow_id),
        )
        key = (tenant_id, flow_id)
        if running is None:
            self._running.pop(key, None)
            return await self.catalogue.compiled_published(tenant_id, flow_id, published, fresh), None
        active = self._running.get(key)
        if active is None or active.experiment_id != running:
            active = self._running[key] = ActiveExperiment.of(await self.get(tenant_id, running))
        arm = active.choose(user_id or conversation_id)
        if arm.flow_version is None:
            compiled = await self.catalogue.compiled_published(tenant_id, flow_id, published, fresh)
        else:
            compiled = await self.catalogue.version(tenant_id, flow_id, arm.flow_version, fresh)
        return compiled, Assignment(running, arm, "user" if user_id else "conversation")

    async def _derived_document(self, tenant_id: str, flow_id: str, version: str) -> dict[str, Any] | None:
        """A patched variant's flow document, rebuilt from the experiment (another process started it,
        or this one restarted): the base version it fixed at start, with the variant's merge patch."""
        parsed = parse_derived(version)
        if parsed is None:
            return None
        base, experiment_id, variant = parsed
        record = await self.store.get_experiment(tenant_id, experiment_id)
        if record is None or record.flow_id != flow_id or record.bases.get(variant) != base:
            return None
        definition = ExperimentDefinition.model_validate(record.document)
        patch = next(v.modifications.merge_patch for v in definition.variants if v.name == variant)
        stored = await self.store.get_flow_version(tenant_id, flow_id, base)
        if stored is None or patch is None:
            return None
        patched: dict[str, Any] = merge_patch(stored.document, patch)
        return patched

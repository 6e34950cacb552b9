"""The flow catalogue: the one way flow versions get into the engine and out to the turn.

validate (in the tenant's view of the registry) -> save -> publish -> compile -> evict, and resolve the
version a run uses (published, pinned, or a sub-flow's). REST, ``serve --flows``, ``chat`` and the turn
all go through it, so each honours the tenant's enabled plugins: at upload and publish a flow naming a
plugin the tenant has not enabled fails validation (the problem names its JSON pointer, the plugin and
the tenant), and a flow published before a plugin was disabled fails its next turn with
``PluginNotEnabled`` (nothing of that turn is written).

Compiled flows are cached in process by (tenant, flow_id, version): versions are immutable once stored,
so an entry never goes stale (a derived version, ``1.2.0+<tag>``, is an experiment variant's patched
flow: its document comes from ``derive_versions``' source, is as immutable, and is cached the same way);
the cache is bounded (least recently used goes first). Each compiled flow carries the third-party plugins
it uses, so the run-time check costs nothing for a flow of built-ins and a dict lookup otherwise: the
tenant's settings are kept here for ``TENANT_CACHE_S`` (changed through this catalogue they are forgotten
at once; changed by another process they are seen within that time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from mcp_engine.contract import Services
from mcp_engine.errors import FlowNotFound, InvalidInput, PluginNotEnabled
from mcp_engine.flow.loader import Source
from mcp_engine.flow.validate import ValidationResult, validate_data
from mcp_engine.registry import Registry, enables, named
from mcp_engine.rulesets.ruleset import Backend
from mcp_engine.runtime.compiled import CompiledFlow, compile_flow
from mcp_engine.store.base import FlowVersion, Store, Tenant

Key = tuple[str, str, str]
TENANT_CACHE_S = 5.0
DERIVED = "+"  # a version with build metadata is derived: not stored, built from a stored one
DerivedSource = Callable[[str, str, str], Awaitable[dict[str, Any] | None]]


class FlowCatalogue:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        backend: Backend,
        services: Services,
        size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.registry, self.backend, self.services, self.size = (
            store,
            registry,
            backend,
            services,
            size,
        )
        self._clock = clock
        self._flows: OrderedDict[Key, CompiledFlow] = OrderedDict()
        self._compiling: dict[Key, asyncio.Lock] = {}
        self._tenants: dict[str, tuple[float, Tenant | None]] = {}
        self._derived: DerivedSource | None = None

    def derive_versions(self, source: DerivedSource) -> None:
        """Where derived versions' documents come from: ``source(tenant, flow_id, version)`` returns the
        document (its own ``version`` field the base's), or None when there is no such version."""
        self._derived = source

    # --- tenants --------------------------------------------------------------------------------

    async def tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant's settings, at most ``TENANT_CACHE_S`` old."""
        cached = self._tenants.get(tenant_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        tenant = await self.store.get_tenant(tenant_id)
        self._tenants[tenant_id] = (self._clock() + TENANT_CACHE_S, tenant)
        return tenant

    async def put_tenant(self, tenant: Tenant) -> None:
        """Store the tenant's settings; this process forgets its cached copy at once."""
        await self.store.put_tenant(tenant)
        self._tenants.pop(tenant.tenant_id, None)

    def check_plugin_names(self, names: list[str]) -> None:
        """``InvalidInput`` unless every name is an installed plugin or distribution (a skipped one too:
        enabling it takes effect once it loads)."""
        providers = [*self.registry.providers(), *(entry.provider for entry in self.registry.skipped)]
        unknown = [(i, name) for i, name in enumerate(names) if not any(named(name, p) for p in providers)]
        if unknown:
            installed = ", ".join(sorted({p.plugin for p in providers if not p.builtin})) or "none"
            raise InvalidInput(
                "enabled_plugins names no installed plugin or distribution: "
                f"{', '.join(repr(name) for _, name in unknown)} (installed: {installed})",
                {
                    "errors": [
                        {"loc": ["body", "enabled_plugins", i], "msg": "not installed", "type": "plugin"}
                        for i, _ in unknown
                    ]
                },
            )

    async def set_default_flow(self, tenant_id: str, flow_id: str) -> None:
        tenant = await self.store.get_tenant(tenant_id) or Tenant(tenant_id)
        await self.put_tenant(dataclasses.replace(tenant, default_flow=flow_id))

    async def default_flow(self, tenant_id: str) -> str:
        tenant = await self.store.get_tenant(tenant_id)
        if tenant is None or not tenant.default_flow:
            raise FlowNotFound(
                "no flow for this conversation: give hints.force_flow or set the tenant's default flow",
                {"tenant_id": tenant_id},
            )
        return tenant.default_flow

    async def view(self, tenant_id: str) -> Registry:
        """The registry as ``tenant_id`` sees it: only the plugins it has enabled (and the built-ins)."""
        tenant = await self.store.get_tenant(tenant_id)
        return self.registry.tenant_view(tenant.enabled_plugins if tenant else None, tenant_id)

    # --- documents ------------------------------------------------------------------------------

    async def validate(self, tenant_id: str, document: Any, source: Source | None = None) -> ValidationResult:
        """Every problem of ``document`` as ``tenant_id`` would get them on upload; nothing is stored."""
        return validate_data(document, await self.view(tenant_id), source)

    async def create(
        self, tenant_id: str, document: dict[str, Any]
    ) -> tuple[FlowVersion, ValidationResult, bool]:
        """Validate in the tenant's view and store a draft version: the stored version, the validation
        (its warnings), and whether this exact version was stored already. ``FlowValidationError`` lists
        every problem; ``VersionExists`` when the version is stored with other content."""
        result = await self.validate(tenant_id, document)
        flow = result.raise_for_errors()
        existed = await self.store.get_flow_version(tenant_id, flow.flow_id, flow.version) is not None
        return await self.store.save_flow_version(tenant_id, document), result, existed

    async def publish(self, tenant_id: str, flow_id: str, version: str) -> FlowVersion:
        """Make a stored version the one new runs use (an older one: a rollback), validated again first
        (the tenant's enabled plugins may have changed since it was stored) and compiled before traffic."""
        stored = await self.store.get_flow_version(tenant_id, flow_id, version)
        if stored is None:
            raise FlowNotFound(f"flow '{flow_id}' version {version} not found", {"flow_id": flow_id})
        return await self._publish(
            tenant_id, flow_id, version, await self.validate(tenant_id, stored.document)
        )

    async def publish_document(
        self, document: Any, make_default: bool = False, source: Source | None = None
    ) -> FlowVersion:
        """Validate, store and publish a document for the tenant it names (``serve --flows``, ``chat``);
        ``source`` (the parsed file) gives the problems their lines."""
        tenant_id = document.get("tenant_id") if isinstance(document, dict) else None
        if not isinstance(tenant_id, str):  # the document is invalid: say how
            tenant_id = validate_data(document, self.registry, source).raise_for_errors().tenant_id
        result = await self.validate(tenant_id, document, source)
        flow = result.raise_for_errors()
        await self.store.save_flow_version(tenant_id, document)
        published = await self._publish(tenant_id, flow.flow_id, flow.version, result)
        if make_default:
            await self.set_default_flow(tenant_id, flow.flow_id)
        return published

    async def _publish(
        self, tenant_id: str, flow_id: str, version: str, validated: ValidationResult
    ) -> FlowVersion:
        validated.raise_for_errors()
        published = await self.store.publish(tenant_id, flow_id, version)
        await self._compiled((tenant_id, flow_id, version), validated)
        return published

    async def delete(self, tenant_id: str, flow_id: str) -> bool:
        """Delete every version of a flow and forget its compiled versions (one created again may differ)."""
        deleted = await self.store.delete_flow(tenant_id, flow_id)
        for key in [k for k in self._flows if k[:2] == (tenant_id, flow_id)]:
            self._flows.pop(key).close()
        return deleted

    # --- resolving (the turn) -------------------------------------------------------------------

    async def published(self, tenant_id: str, flow_id: str) -> CompiledFlow:
        """The compiled published version. The store is asked every time (another engine on the same
        store may publish), but only for the version's name: the document is in the compiled flow."""
        return await self.compiled_published(
            tenant_id, flow_id, await self.store.published_version(tenant_id, flow_id)
        )

    async def compiled_published(self, tenant_id: str, flow_id: str, version: str | None) -> CompiledFlow:
        """The compiled published version, its name already looked up (None: there is none)."""
        if version is None:
            raise FlowNotFound(f"flow '{flow_id}' has no published version", {"flow_id": flow_id})
        return await self.version(tenant_id, flow_id, version)

    async def prepare(
        self, tenant_id: str, flow_id: str, version: str, validated: ValidationResult
    ) -> CompiledFlow:
        """Compile a derived version from its validated document now (an experiment's start), so no turn
        compiles it in this process."""
        return await self._compiled((tenant_id, flow_id, version), _named(validated, version))

    async def version(self, tenant_id: str, flow_id: str, version: str) -> CompiledFlow:
        """A compiled version (a run's pinned one, a sub-flow's), if the tenant may still run it."""
        compiled = await self._compiled((tenant_id, flow_id, version))
        if compiled.needs:
            await self._check_enabled(tenant_id, compiled)
        return compiled

    async def _check_enabled(self, tenant_id: str, compiled: CompiledFlow) -> None:
        tenant = await self.tenant(tenant_id)
        enabled = tenant.enabled_plugins if tenant is not None else None
        for need in compiled.needs:
            if not enables(enabled, need.provider):
                flow = compiled.flow
                raise PluginNotEnabled(
                    f"flow '{flow.flow_id}' {flow.version} uses {need.what} ({need.pointer}) from "
                    f"{need.provider}, which tenant '{tenant_id}' has not enabled: enable it "
                    f"(PUT /v2/tenants/{tenant_id}, enabled_plugins) or publish a version without it",
                    {
                        "tenant_id": tenant_id,
                        "flow_id": flow.flow_id,
                        "flow_version": flow.version,
                        "plugin": need.provider.plugin,
                        "distribution": need.provider.distribution,
                        "pointer": need.pointer,
                    },
                )

    async def _compiled(self, key: Key, validated: ValidationResult | None = None) -> CompiledFlow:
        """The compiled version, compiled once (from ``validated`` when the caller validated it already)."""
        compiled = self._flows.get(key)
        if compiled is not None:
            self._flows.move_to_end(key)
            return compiled
        lock = self._compiling.setdefault(key, asyncio.Lock())
        async with lock:
            compiled = self._flows.get(key)
            if compiled is None:
                result = validated or await self._validated(key)
                compiled = compile_flow(result.raise_for_errors(), self.registry, self.backend, self.services)
                compiled.needs = tuple(use for use in result.plugins_used if not use.provider.builtin)
                self._add(key, compiled)
        self._compiling.pop(key, None)
        return compiled

    async def _validated(self, key: Key) -> ValidationResult:
        tenant_id, flow_id, version = key
        document: dict[str, Any] | None = None
        if DERIVED in version and self._derived is not None:
            document = await self._derived(tenant_id, flow_id, version)
        elif (stored := await self.store.get_flow_version(tenant_id, flow_id, version)) is not None:
            document = stored.document
        if document is None:
            raise FlowNotFound(f"flow '{flow_id}' version {version} not found", {"flow_id": flow_id})
        return _named(validate_data(document, self.registry), version)

    def _add(self, key: Key, compiled: CompiledFlow) -> None:
        self._flows[key] = compiled
        while len(self._flows) > self.size:
            _, evicted = self._flows.popitem(last=False)
            evicted.close()

    def close(self) -> None:
        for compiled in self._flows.values():
            compiled.close()
        self._flows.clear()


def _named(result: ValidationResult, version: str) -> ValidationResult:
    """``result`` with its flow named ``version``: a derived version's document carries its base's."""
    if result.flow is not None and result.flow.version != version:
        result.flow = result.flow.model_copy(update={"version": version})
    return result

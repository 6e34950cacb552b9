"""Compiled flows cached in process by (tenant, flow_id, version): versions are immutable once stored,
so an entry never goes stale; the cache is bounded (least recently used goes first)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from mcp_engine.contract import Services
from mcp_engine.errors import FlowNotFound
from mcp_engine.flow.validate import validate_data
from mcp_engine.registry import Registry
from mcp_engine.rulesets.ruleset import Backend
from mcp_engine.runtime.compiled import CompiledFlow, compile_flow
from mcp_engine.store.base import Store

Key = tuple[str, str, str]


class FlowCache:
    def __init__(
        self, store: Store, registry: Registry, backend: Backend, services: Services, size: int
    ) -> None:
        self.store, self.registry, self.backend, self.services, self.size = (
            store,
            registry,
            backend,
            services,
            size,
        )
        self._flows: OrderedDict[Key, CompiledFlow] = OrderedDict()
        self._compiling: dict[Key, asyncio.Lock] = {}

    async def version(self, tenant_id: str, flow_id: str, version: str) -> CompiledFlow:
        key = (tenant_id, flow_id, version)
        compiled = self._flows.get(key)
        if compiled is not None:
            self._flows.move_to_end(key)
            return compiled
        lock = self._compiling.setdefault(key, asyncio.Lock())
        async with lock:
            compiled = self._flows.get(key)
            if compiled is None:
                stored = await self.store.get_flow_version(tenant_id, flow_id, version)
                if stored is None:
                    raise FlowNotFound(f"flow '{flow_id}' version {version} not found", {"flow_id": flow_id})
                flow = validate_data(stored.document, self.registry).raise_for_errors()
                compiled = compile_flow(flow, self.registry, self.backend, self.services)
                self._add(key, compiled)
        self._compiling.pop(key, None)
        return compiled

    async def published(self, tenant_id: str, flow_id: str) -> CompiledFlow:
        # The store is asked every time (another engine on the same store may publish), but only for the
        # version's name: the document is in the compiled flow already.
        version = await self.store.published_version(tenant_id, flow_id)
        if version is None:
            raise FlowNotFound(f"flow '{flow_id}' has no published version", {"flow_id": flow_id})
        return await self.version(tenant_id, flow_id, version)

    def evict(self, tenant_id: str, flow_id: str) -> None:
        """Forget every compiled version of a deleted flow: a version created again may differ."""
        for key in [k for k in self._flows if k[:2] == (tenant_id, flow_id)]:
            self._flows.pop(key).close()

    def _add(self, key: Key, compiled: CompiledFlow) -> None:
        self._flows[key] = compiled
        while len(self._flows) > self.size:
            _, evicted = self._flows.popitem(last=False)
            evicted.close()

    def close(self) -> None:
        for compiled in self._flows.values():
            compiled.close()
        self._flows.clear()

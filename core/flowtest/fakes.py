"""Fake integrations: declared answers in place of the network, swapped in through the plugin registry.

Why the registry and not a fake HTTP server: a flow test checks the flow, not the HTTP client (the
engine's own tests run the ``rest`` client against a real aiohttp server). Substituting each
integration client in a copy of the registry keeps everything the flow owns on the real path: the
endpoint template, the request mapping, the response mapping's JSONPaths, ``integration_results``, the
``integration_call`` event and the ``integration_success``/``integration_error`` conditions. It works for
every client type a plugin adds (not only HTTP), opens no port and needs no loopback grant, so the REST
test endpoint of a served engine never makes an outbound call on a test's behalf. The real client is
still built from the integration (its configuration is checked as at compile time); only ``call`` is
answered here.

A client is made per integration with no id, so a fake client finds its ids by comparing the
integration with the declarations of the loaded flows (two integrations declared identically are one
service to the fakes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_engine import Integration, IntegrationClient, IntegrationRequest, IntegrationResult, Services
from mcp_engine.flowtest.spec import Fake
from mcp_engine.registry import Kind, Registry

Fallback = Callable[[frozenset[str], IntegrationRequest], IntegrationResult | None]


@dataclass
class Call:
    """One call a flow made, and whether a fake (or the fallback) answered it."""

    integrations: frozenset[str]
    method: str
    endpoint: str
    params: dict[str, Any]
    answered: bool

    def describe(self) -> str:
        params = f" {dict(sorted(self.params.items()))}" if self.params else ""  # stable, whatever the order
        return f"{'/'.join(sorted(self.integrations))} {self.method} {self.endpoint or '/'}{params}"


@dataclass
class FakeBook:
    """The fakes in force (set per turn) and every call made; ``fallback`` answers what no fake does
    (replay: the recorded outcome)."""

    declared: list[tuple[str, Integration]]
    fakes: list[Fake] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    fallback: Fallback | None = None

    @classmethod
    def of(cls, integrations: Iterable[Mapping[str, Integration]]) -> FakeBook:
        return cls([(name, model) for declared in integrations for name, model in declared.items()])

    def ids_of(self, integration: Integration) -> frozenset[str]:
        return frozenset(name for name, declared in self.declared if declared == integration)

    def answer(self, ids: frozenset[str], request: IntegrationRequest) -> IntegrationResult:
        fake = next(
            (f for f in self.fakes if f.matches(set(ids), request.method, request.endpoint, request.params)),
            None,
        )
        result = _result(fake, request) if fake is not None else None
        if result is None and self.fallback is not None:
            result = self.fallback(ids, request)
        self.calls.append(
            Call(ids, request.method, request.endpoint, dict(request.params), result is not None)
        )
        if result is None:
            return IntegrationResult(ok=False, error="network", message="no fake answers this call")
        return result

    def unanswered(self, since: int = 0) -> list[Call]:
        return [call for call in self.calls[since:] if not call.answered]


def _result(fake: Fake, request: IntegrationRequest) -> IntegrationResult:
    """What the real client would return for this answer (error kinds as ``rest`` reports them)."""
    kind: str
    status: int | None
    if fake.error is not None:
        kind, status = fake.error, None
    elif fake.status >= 500:
        kind, status = "http_5xx", fake.status
    elif fake.status >= 400:
        kind, status = "http_4xx", fake.status
    elif fake.status >= 300 or fake.status < 200:
        kind, status = "mapping", fake.status
    else:
        return IntegrationResult(ok=True, data=fake.body, status=fake.status)
    retried = kind in request.retry_on
    return IntegrationResult(
        ok=False,
        error=kind,
        message=f"fake: {kind}",
        status=status,
        attempts=request.max_retries + 1 if retried else 1,
    )


def fake_registry(registry: Registry, book: FakeBook) -> Registry:
    """``registry`` with every integration client answered from ``book`` (same names, same providers)."""
    real = registry.integration_clients
    fakes: Kind[IntegrationClient] = Kind(real.label, real.base, hidden=dict(real.hidden))
    for name, cls in real.classes.items():
        fakes.classes[name] = _faked(cls, book)
        fakes.providers[name] = real.providers[name]
    return dataclasses.replace(registry, integration_clients=fakes)


def _faked(real: type[IntegrationClient], book: FakeBook) -> type[IntegrationClient]:
    class FakeClient(IntegrationClient):
        name = real.name
        description = f"{real.name}, answered by the test's fakes"

        def __init__(self, integration: Integration, services: Services) -> None:
            super().__init__(integration, services)
            real(integration, services)  # the real client checks the configuration, as in production
            self.ids = book.ids_of(integration)

        async def call(self, request: IntegrationRequest) -> IntegrationResult:
            return book.answer(self.ids, request)

    return FakeClient

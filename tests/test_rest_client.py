"""The ``rest`` integration client against a real HTTP server on 127.0.0.1 that counts what it receives."""

import asyncio
import base64
import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from mcp_engine import IntegrationRequest, Services
from mcp_engine.flow.models import Integration, RetryPolicy
from mcp_engine.plugins.integrations.rest import RestClient
from mcp_engine.runtime.services import EngineServices
from mcp_engine.testing import FakeIntegration

SECRET = "s3cr3t-d0-not-leak"
ENV = {"API_SECRET": SECRET, "API_USER": "ada", "API_PASSWORD": SECRET}


@dataclass
class Backend:
    server: FakeIntegration
    hits: Counter[str] = field(default_factory=Counter)
    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.url("/api")


@pytest.fixture
def backend(fake_integration: FakeIntegration) -> Backend:
    backend = Backend(fake_integration)

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        backend.hits[name] += 1
        body = await request.json() if request.body_exists else None
        backend.seen.append(
            {"method": request.method, "query": list(request.query.items()), "body": body, **request.headers}
        )
        if name == "missing":
            return web.json_response({"error": "no such account"}, status=404)
        if name == "flaky" and backend.hits[name] == 1:
            return web.Response(status=503)
        if name == "broken":
            return web.Response(status=500)
        if name == "slow":
            await asyncio.sleep(5)
        if name == "malformed":
            return web.Response(text='{"balance": 1', content_type="application/json")
        if name == "empty":
            return web.Response(status=204)
        if name == "redirect":
            raise web.HTTPFound("/api/echo")
        return web.json_response({"data": {"balance": 12.5}, "method": request.method})

    backend.server.route("*", "/api/{name}", handle)
    return backend


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    services = EngineServices(env=ENV)
    yield services
    await services.close()


def request(endpoint: str, method: str = "GET", **overrides: Any) -> IntegrationRequest:
    fields: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "params": {},
        "timeout_ms": 1000,
        "max_retries": 2,
        "backoff_ms": 10,
        "retry_on": ("timeout", "http_5xx", "network"),
        "deadline": time.monotonic() + 10,
    }
    return IntegrationRequest(**(fields | overrides))


def client(services: Services, base_url: str, **integration: Any) -> RestClient:
    return RestClient(Integration(base_url=base_url, retry_policy=RetryPolicy(), **integration), services)


async def test_get_sends_params_as_query_string(backend: Backend, services: Services) -> None:
    params = {"account": 42, "verbose": True, "tags": ["a", "b"], "skip": None}
    result = await client(services, backend.base_url).call(request("/echo", params=params))
    assert result.ok, result
    assert result.data == {"data": {"balance": 12.5}, "method": "GET"}
    assert (result.status, result.attempts, result.error) == (200, 1, None)
    assert result.latency_ms > 0
    assert backend.seen[0]["query"] == [("account", "42"), ("verbose", "true"), ("tags", "a"), ("tags", "b")]
    assert backend.seen[0]["body"] is None


async def test_post_sends_params_as_json_body(backend: Backend, services: Services) -> None:
    params = {"amount": 5, "note": "rent", "items": [1, 2]}
    result = await client(services, backend.base_url + "/").call(request("echo", "POST", params=params))
    assert result.ok, result
    assert backend.seen[0]["body"] == params
    assert backend.seen[0]["Content-Type"] == "application/json"
    assert backend.seen[0]["query"] == []


async def test_header_secrets_resolved_at_call_time_and_never_shown(
    backend: Backend, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rest = client(services, backend.base_url, headers={"X-Api-Key": "key-${env:API_SECRET}", "X-Static": "v"})
    ok = await rest.call(request("/echo"))
    failed = await rest.call(request("/missing"))
    assert backend.seen[0]["X-Api-Key"] == f"key-{SECRET}"
    assert backend.seen[0]["X-Static"] == "v"
    assert "${env:API_SECRET}" in rest.integration.headers["X-Api-Key"]  # never stored resolved
    for text in (repr(ok), repr(failed), caplog.text):
        assert SECRET not in text


async def test_missing_environment_variable_is_a_mapping_error_without_a_request(
    backend: Backend, services: Services
) -> None:
    rest = client(services, backend.base_url, headers={"X-Api-Key": "${env:NOT_SET}"})
    result = await rest.call(request("/echo"))
    assert (result.ok, result.error, result.attempts) == (False, "mapping", 0)
    assert result.message == "secret NOT_SET is not granted to this tenant, or not set"
    assert not backend.hits


@pytest.mark.parametrize(
    ("authentication", "header", "expected"),
    [
        ({"type": "bearer", "token": "${env:API_SECRET}"}, "Authorization", f"Bearer {SECRET}"),
        (
            {"type": "basic", "username": "${env:API_USER}", "password": "${env:API_PASSWORD}"},
            "Authorization",
            "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode(),
        ),
        ({"type": "api_key", "header": "X-Key", "value": "${env:API_SECRET}"}, "X-Key", SECRET),
    ],
)
async def test_authentication(
    backend: Backend, services: Services, authentication: dict[str, str], header: str, expected: str
) -> None:
    result = await client(services, backend.base_url, authentication=authentication).call(request("/echo"))
    assert result.ok, result
    assert backend.seen[0][header] == expected


def test_unknown_authentication_fails_when_the_flow_is_compiled(services: Services) -> None:
    with pytest.raises(ValueError, match="authentication type"):
        client(services, "http://127.0.0.1:1", authentication={"type": "oauth"})
    with pytest.raises(ValueError, match="needs token"):
        client(services, "http://127.0.0.1:1", authentication={"type": "bearer"})


async def test_4xx_is_never_retried(backend: Backend, services: Services) -> None:
    retry_all = ("timeout", "http_4xx", "http_5xx", "network")
    result = await client(services, backend.base_url).call(request("/missing", retry_on=retry_all))
    assert (result.ok, result.error, result.status, result.attempts) == (False, "http_4xx", 404, 1)
    assert backend.hits["missing"] == 1


async def test_5xx_then_success_after_one_retry(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/flaky"))
    assert (result.ok, result.status, result.attempts) == (True, 200, 2)
    assert backend.hits["flaky"] == 2


async def test_persistent_5xx_gives_up_after_max_retries(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/broken", max_retries=3))
    assert (result.ok, result.error, result.status, result.attempts) == (False, "http_5xx", 500, 4)
    assert backend.hits["broken"] == 4


async def test_only_listed_error_kinds_are_retried(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/broken", retry_on=("timeout",)))
    assert (result.error, result.attempts) == ("http_5xx", 1)
    assert backend.hits["broken"] == 1


async def test_slow_answer_is_a_timeout(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/slow", timeout_ms=100, max_retries=1))
    assert (result.ok, result.error, result.status, result.attempts) == (False, "timeout", None, 2)


async def test_the_whole_call_is_bounded_by_the_deadline(backend: Backend, services: Services) -> None:
    started = time.monotonic()
    deadline = started + 0.5
    slow = request("/slow", timeout_ms=5000, max_retries=5, deadline=deadline)
    result = await client(services, backend.base_url).call(slow)
    assert result.error == "timeout"
    assert time.monotonic() - started < 0.5 + 0.5
    assert backend.hits["slow"] == result.attempts == 1


async def test_past_deadline_makes_no_attempt(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/echo", deadline=time.monotonic() - 1))
    assert (result.error, result.attempts) == ("timeout", 0)
    assert not backend.hits


async def test_connection_refused_is_a_network_error(services: Services) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await client(services, f"http://127.0.0.1:{port}").call(request("/echo", max_retries=1))
    assert (result.ok, result.error, result.status, result.attempts) == (False, "network", None, 2)


async def test_malformed_json_is_a_mapping_error(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/malformed"))
    assert (result.ok, result.error, result.status, result.attempts) == (False, "mapping", 200, 1)
    assert result.message.startswith("response is not JSON")


async def test_empty_success_has_no_data(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/empty", "DELETE"))
    assert (result.ok, result.data, result.status) == (True, None, 204)


async def test_redirects_are_not_followed(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request("/redirect"))
    assert (result.error, result.status) == ("mapping", 302)
    assert backend.hits == Counter({"redirect": 1})


async def test_absolute_endpoint_under_base_url_is_allowed(backend: Backend, services: Services) -> None:
    result = await client(services, backend.base_url).call(request(backend.base_url + "/echo"))
    assert result.ok, result


@pytest.mark.parametrize(
    "endpoint",
    ["http://example.com/api/echo", "/../admin", "/%2e%2e/admin", "{base}x/echo", "{base}@evil.example/x"],
)
async def test_endpoint_outside_base_url_is_refused(
    backend: Backend, services: Services, endpoint: str
) -> None:
    rest = client(services, backend.base_url)
    result = await rest.call(request(endpoint.format(base=backend.base_url)))
    assert (result.ok, result.error, result.attempts) == (False, "mapping", 0)
    assert "is not under the integration's base_url" in result.message
    assert not backend.hits

"""``rest``: JSON over HTTP(S), with per-attempt timeouts and retries, all under the turn's deadline.

Decisions a flow designer can rely on:

- The endpoint is joined to ``base_url`` and the result must stay under it (same scheme, host and port, and
  a path below the base path after ``..`` is resolved). An absolute endpoint is accepted only when it is
  under ``base_url``: headers carry secrets, which must never travel to another host. For the same reason
  redirects are not followed.
- GET sends the request's params as the query string (``None`` dropped, booleans as ``true``/``false``,
  lists as repeated keys); every other method sends them as a JSON body.
- ``${env:NAME}`` in header and authentication values is resolved at each call from the secrets an
  operator granted the tenant (``services.env``), never stored resolved, and never appears in a result or
  a log line. A secret that is not granted or not set is a ``mapping`` error ("the request could not be
  built"), not retried: retrying cannot make it appear.
- A 2xx answer must be JSON (whatever its Content-Type says) or empty (``data`` is None); anything else is
  a ``mapping`` error, as is a 1xx/3xx answer. 4xx is ``http_4xx`` and never retried.
- Error kinds in the request's ``retry_on`` are retried with exponential backoff and jitter, but no attempt
  starts after the deadline, and no attempt runs past it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from yarl import URL

from mcp_engine import IntegrationClient, IntegrationRequest, IntegrationResult, hookimpl

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 5 * 1024 * 1024
_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_NEVER_RETRIED = frozenset({"http_4xx", "mapping"})
_Query = list[tuple[str, str]] | None


class _Unbuildable(Exception):
    """The request cannot be built (a missing variable, an endpoint outside base_url): a ``mapping`` error."""


def _auth_headers(auth: Mapping[str, Any]) -> dict[str, str]:
    """The header templates an ``authentication`` block stands for; raises ``ValueError`` for a bad block."""
    kind = auth.get("type")
    fields = {"bearer": ("token",), "basic": ("username", "password"), "api_key": ("header", "value")}
    if not auth:
        return {}
    if kind not in fields:
        raise ValueError(f"authentication type must be one of {', '.join(fields)}, not {kind!r}")
    if missing := [name for name in fields[kind] if not isinstance(auth.get(name), str)]:
        raise ValueError(f"{kind} authentication needs {', '.join(missing)} (strings)")
    if kind == "bearer":
        return {"Authorization": f"Bearer {auth['token']}"}
    if kind == "api_key":
        return {auth["header"]: auth["value"]}
    return {}  # basic: encoded per call, once its parts are resolved


class _StopAtDeadline(stop_base):
    """Stop when the next attempt, after its backoff, could not start before the deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


class RestClient(IntegrationClient):
    name = "rest"
    description = "JSON over HTTP with timeouts, retries and JSONPath response mapping."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes ``(integration, services)`` like every client (``Integration`` is not in the public API).

        Checks the integration once per compiled flow, so a bad ``authentication`` fails compilation.
        """
        super().__init__(*args, **kwargs)
        integration = self.integration
        self._base = URL(integration.base_url.rstrip("/"))
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise ValueError(f"base_url '{integration.base_url}' is not an http(s) URL")
        self._header_templates = {"Accept": "application/json", **integration.headers}
        self._header_templates.update(_auth_headers(integration.authentication))
        basic = integration.authentication.get("type") == "basic"
        self._basic = (
            (integration.authentication["username"], integration.authentication["password"])
            if basic
            else None
        )

    async def call(self, request: IntegrationRequest) -> IntegrationResult:
        started = time.monotonic()
        try:
            url = self._url(request.endpoint)
            headers = self._headers()
            query, body = self._payload(request)
            if body is not None:
                headers["Content-Type"] = "application/json"
        except _Unbuildable as exc:
            return IntegrationResult(ok=False, error="mapping", message=str(exc), attempts=0)
        if started >= request.deadline:
            return IntegrationResult(
                ok=False, error="timeout", message="the turn's deadline had passed", attempts=0
            )

        attempts = 0

        async def attempt() -> IntegrationResult:
            nonlocal attempts
            attempts += 1
            return await self._attempt(request, url, headers, query, body)

        retryable = frozenset(request.retry_on) - _NEVER_RETRIED
        backoff_s = request.backoff_ms / 1000

        retrying = AsyncRetrying(
            stop=stop_after_attempt(request.max_retries + 1) | _StopAtDeadline(request.deadline),
            wait=wait_exponential_jitter(multiplier=backoff_s, jitter=backoff_s),
            retry=retry_if_result(lambda result: not result.ok and result.error in retryable),
            # When attempts or time run out, the last attempt's result is the answer, not a RetryError.
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        result: IntegrationResult = await retrying(attempt)
        return replace(result, attempts=attempts, latency_ms=(time.monotonic() - started) * 1000)

    async def _attempt(
        self,
        request: IntegrationRequest,
        url: URL,
        headers: dict[str, str],
        query: _Query,
        body: bytes | None,
    ) -> IntegrationResult:
        """One HTTP exchange, bounded by the request's timeout and by the deadline, whichever comes first."""
        timeout_s = min(request.timeout_ms / 1000, request.deadline - time.monotonic())
        if timeout_s <= 0:
            return IntegrationResult(ok=False, error="timeout", message="the turn's deadline had passed")
        try:
            async with self.services.http().request(
                request.method,
                url,
                params=query,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                result = await _read(response)
        except TimeoutError:  # aiohttp's ServerTimeoutError is one too, so this comes before ClientError
            result = IntegrationResult(
                ok=False, error="timeout", message=f"no answer within {timeout_s:.3g} s"
            )
        except aiohttp.ClientError as exc:
            result = IntegrationResult(ok=False, error="network", message=f"{type(exc).__name__}: {exc}")
        logger.debug("%s %s: %s", request.method, url, result.error or result.status)
        return result

    def _url(self, endpoint: str) -> URL:
        base = str(self._base)
        if endpoint.startswith(("http://", "https://")):
            joined = endpoint
        else:
            joined = f"{base}/{endpoint.lstrip('/')}" if endpoint else base
        url = URL(joined)  # resolves ".." and "%2e%2e", so the check below sees the real path
        base_path = self._base.path.rstrip("/")
        same_origin = (url.scheme, url.host, url.port) == (
            self._base.scheme,
            self._base.host,
            self._base.port,
        )
        if not same_origin or not (url.path == base_path or url.path.startswith(f"{base_path}/")):
            raise _Unbuildable(f"endpoint '{endpoint}' is not under the integration's base_url '{base}'")
        return url

    def _headers(self) -> dict[str, str]:
        headers = {name: self._resolve(value) for name, value in self._header_templates.items()}
        if self._basic is not None:
            username, password = (self._resolve(part) for part in self._basic)
            try:
                headers["Authorization"] = aiohttp.encode_basic_auth(username, password)
            except ValueError:  # RFC 7617 forbids ':' in the username
                raise _Unbuildable("basic authentication: the username contains ':'") from None
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # aiohttp would reject it, quoting the (secret) value
                raise _Unbuildable(f"header '{name}' contains a line break")
        return headers

    def _resolve(self, template: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            value = self.services.env.get(match[1])
            if value is None:
                raise _Unbuildable(f"secret {match[1]} is not granted to this tenant, or not set")
            return value

        return _ENV_REFERENCE.sub(substitute, template)

    @staticmethod
    def _payload(request: IntegrationRequest) -> tuple[_Query, bytes | None]:
        """(query, body): built once per call, not per attempt."""
        if request.method == "GET":
            return _query(request.params), None
        try:
            return None, json.dumps(request.params).encode()
        except (TypeError, ValueError) as exc:
            raise _Unbuildable(f"request body is not JSON: {exc}") from None


def _query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for name, value in params.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if item is None:
                continue
            if isinstance(item, bool):
                pairs.append((name, "true" if item else "false"))
            elif isinstance(item, dict):
                pairs.append((name, json.dumps(item)))
            else:
                pairs.append((name, str(item)))
    return pairs


async def _read(response: aiohttp.ClientResponse) -> IntegrationResult:
    """Turn one HTTP response into a result: status first, then the body (bounded) as JSON."""
    status = response.status
    if status >= 500:
        return IntegrationResult(ok=False, error="http_5xx", message=f"HTTP {status}", status=status)
    if status >= 400:
        return IntegrationResult(ok=False, error="http_4xx", message=f"HTTP {status}", status=status)
    if status >= 300 or status < 200:
        message = f"HTTP {status}: redirects are not followed" if status >= 300 else f"HTTP {status}"
        return IntegrationResult(ok=False, error="mapping", message=message, status=status)
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            message = f"response larger than {MAX_RESPONSE_BYTES} bytes"
            return IntegrationResult(ok=False, error="mapping", message=message, status=status)
    if not body.strip():
        return IntegrationResult(ok=True, data=None, status=status)
    try:
        data = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        return IntegrationResult(
            ok=False, error="mapping", message=f"response is not JSON: {exc}", status=status
        )
    return IntegrationResult(ok=True, data=data, status=status)


@hookimpl
def mcp_engine_integration_clients() -> list[type[IntegrationClient]]:
    return [RestClient]

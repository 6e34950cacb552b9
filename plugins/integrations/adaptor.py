"""``adaptor``: the call forwarded to the Adaptor Service, which reaches the external system for the engine.

The Adaptor Service owns the systems' credentials, request transformation and response mapping on its
side; the engine sends it the seed's ``execute_integration`` request as one JSON POST to ``base_url``::

    {"integration_id": "crm", "endpoint": "/accounts/42", "method": "GET",
     "request_data": {...}, "timeout_ms": 5000}

and it answers ``{"success": true, "data": ...}`` or ``{"success": false, "error": "...", "error_kind":
"http_4xx"}``. Reaching the Adaptor Service is a ``rest`` call in every respect (headers, authentication,
``${env:NAME}`` secrets, timeouts, retries, the deadline, the circuit breaker), through the same HTTP path.
A failure the Adaptor Service reports is its answer, not retried here (it retries the system itself); its
kind is ``error_kind`` when that is one the flow can route on, else ``http_5xx`` (the system behind it
failed, as a gateway's 502 says).
"""

from __future__ import annotations

from dataclasses import replace

from mcp_engine import IntegrationClient, IntegrationRequest, IntegrationResult, hookimpl
from mcp_engine.plugins.integrations.rest import RestClient

REPORTED_KINDS = frozenset({"timeout", "http_4xx", "http_5xx", "network", "mapping"})


class AdaptorClient(RestClient):
    name = "adaptor"
    description = "Forwards the call to the Adaptor Service (execute_integration) at base_url."

    async def call(self, request: IntegrationRequest) -> IntegrationResult:
        body = {
            "integration_id": request.integration_id,
            "endpoint": request.endpoint,
            "method": request.method,
            "request_data": request.params,
            "timeout_ms": request.timeout_ms,
        }
        result = await super().call(replace(request, method="POST", endpoint="", params=body))
        return _unwrapped(result) if result.ok else result


def _unwrapped(result: IntegrationResult) -> IntegrationResult:
    """The system's outcome inside the Adaptor Service's answer."""
    answer = result.data
    if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
        message = "the Adaptor Service's answer is not {'success': true|false, ...}"
        return replace(result, ok=False, error="mapping", message=message, data=None)
    if answer["success"]:
        return replace(result, data=answer.get("data"))
    kind = answer.get("error_kind")
    return replace(
        result,
        ok=False,
        data=None,
        error=kind if kind in REPORTED_KINDS else "http_5xx",
        message=f"the Adaptor Service reported: {answer.get('error') or 'failure'}",
    )


@hookimpl
def mcp_engine_integration_clients() -> list[type[IntegrationClient]]:
    return [AdaptorClient]

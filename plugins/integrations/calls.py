"""An integration call prepared once per flow version, run by the integration state and the action.

Preparing compiles the endpoint template, the request-mapping expressions and the response-mapping
JSONPaths; running renders, maps, calls the client under the turn's deadline, maps the response into
the context and records the outcome for ``integration_success`` / ``integration_error``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mcp_engine import FlowAssets, IntegrationRequest, IntegrationResult, RetryPolicy, TurnView
from mcp_engine.plugins.integrations.mapping import MappingError, compile_response_mapping, set_path
from mcp_engine.plugins.states.integration import IntegrationCall


class PreparedCall:
    def __init__(
        self,
        call: IntegrationCall,
        assets: FlowAssets,
        timeout_ms: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        integration = assets.flow.integrations[call.integration_id]
        self.integration_id = call.integration_id
        self.method = call.method
        self.endpoint = assets.template(call.endpoint) if call.endpoint else None
        self.request = {name: assets.expression(text) for name, text in call.request_mapping.items()}
        self.response = compile_response_mapping(call.response_mapping)
        self.timeout_ms = timeout_ms or integration.timeout_ms
        self.retry = retry or integration.retry_policy

    async def run(self, turn: TurnView) -> IntegrationResult:
        namespace = turn.namespace()
        request = IntegrationRequest(
            method=self.method,
            endpoint=turn.render(self.endpoint) if self.endpoint else "",
            params={name: value(namespace) for name, value in self.request.items()},
            timeout_ms=self.timeout_ms,
            max_retries=self.retry.max_retries,
            backoff_ms=self.retry.backoff_ms,
            retry_on=tuple(self.retry.retry_on),
            deadline=turn.deadline,
            integration_id=self.integration_id,
        )
        result: IntegrationResult = await turn.integration(self.integration_id).call(request)
        if result.ok:
            result = self._map(turn, result)
        turn.record_integration(self.integration_id, result)
        return result

    def _map(self, turn: TurnView, result: IntegrationResult) -> IntegrationResult:
        try:
            values = self.response.apply(result.data)
        except MappingError as exc:
            return dataclasses.replace(result, ok=False, error="mapping", message=str(exc))
        for target, value in values.items():
            set_path(turn.context, target, value)
        results: dict[str, Any] = turn.context.setdefault("integration_results", {})
        results[self.integration_id] = result.data
        return result

"""``rest``: JSON over HTTP(S)."""

from mcp_engine import IntegrationClient, hookimpl


class RestClient(IntegrationClient):
    name = "rest"
    description = "JSON over HTTP with timeouts, retries and JSONPath response mapping."


@hookimpl
def mcp_engine_integration_clients() -> list[type[IntegrationClient]]:
    return [RestClient]

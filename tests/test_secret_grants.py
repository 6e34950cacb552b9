"""Secrets (issue 17, finding 1): ``${env:NAME}`` resolves only what an operator granted the tenant.

The attack: a tenant's integration sent ``${env:MCP_ADMIN_KEY}`` (or ``POSTGRES_URI``, a cloud token) to a
URL it chose. Now an ungranted reference is a 422 naming its pointer at validation and publish, a revoked
grant is refused at call time, and the engine's own configuration is never granted, even when asked to.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner

from mcp_engine.cli import main
from mcp_engine.runtime.execution import ExecutionService
from mcp_engine.security.grants import Grants
from mcp_engine.security.secrets import SecretView, engine_variables
from mcp_engine.store.base import Tenant
from mcp_engine.store.sqlite import SQLiteStore
from mcp_engine.testing import FakeIntegration, engine_settings, start_engine
from tests.engine_fixtures import TENANT, example_flow, rest_client

OWN = ("MCP_ADMIN_KEY", "POSTGRES_URI", "REDIS_URL", "MCP_METRICS_TOKEN", "MCP_SQLITE_PATH", "GRPC_PORT")
ENV = {"CRM_TOKEN": "crm-secret", **{name: f"value-of-{name}" for name in engine_variables()}}


def flow_sending(header: str, base_url: str = "https://crm.example.com/api") -> dict[str, Any]:
    document = copy.deepcopy(example_flow("bank"))
    document["integrations"]["core_banking"]["base_url"] = base_url
    document["integrations"]["core_banking"]["headers"] = {"Authorization": header}
    return document


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[ExecutionService]:
    """Every name in the environment granted to every tenant by the operator: the engine's own too."""
    settings = engine_settings(grant_secrets="*:" + ",".join(ENV))
    started = await start_engine(SQLiteStore(str(tmp_path / "e.db")), settings=settings, env=ENV)
    yield started
    await started.close()


def test_the_engines_own_configuration_is_every_settings_variable() -> None:
    assert set(OWN) <= engine_variables()


@pytest.mark.parametrize("name", sorted({*OWN, *engine_variables(), "MCP_ANYTHING"}))
async def test_the_engines_own_configuration_can_never_be_referenced(
    engine: ExecutionService, name: str
) -> None:
    async with rest_client(engine) as client:
        response = await client.post(
            "/v2/flows", json=flow_sending(f"Bearer ${{env:{name}}}"), headers={"X-Tenant-ID": TENANT}
        )
        body = await response.json()
    assert response.status == 422, body
    (problem,) = [p for p in body["error"]["details"]["problems"] if p["severity"] == "error"]
    assert problem["pointer"] == "/integrations/core_banking/headers/Authorization"
    assert problem["code"] == "secret-not-granted"
    assert f"${{env:{name}}} is the engine's own configuration" in problem["message"]
    # and the tenant's services cannot read it, granted and set as it is
    scope = await engine.catalogue.scope(TENANT)
    assert name not in scope.env
    assert SecretView(ENV, frozenset(ENV)).get(name) is None


async def test_an_ungranted_secret_is_a_422_with_its_pointer(tmp_path: Path) -> None:
    settings = engine_settings(grant_secrets="other:CRM_TOKEN")  # another tenant's grant
    engine = await start_engine(SQLiteStore(str(tmp_path / "e.db")), settings=settings, env=ENV)
    try:
        async with rest_client(engine) as client:
            document = flow_sending("Bearer ${env:CRM_TOKEN}")
            document["settings"] = {
                "classifier": "http",
                "classifier_config": {"url": "https://nlu.example.com", "headers": {"X-Key": "${env:NLU}"}},
            }
            for path in ("/v2/flows", "/v2/flows/validate"):
                response = await client.post(path, json=document, headers={"X-Tenant-ID": TENANT})
                body = await response.json()
                problems = (
                    body["error"]["details"]["problems"] if response.status == 422 else body["problems"]
                )
                assert sorted((p["pointer"], p["code"]) for p in problems if p["severity"] == "error") == [
                    ("/integrations/core_banking/headers/Authorization", "secret-not-granted"),
                    ("/settings/classifier_config/headers/X-Key", "secret-not-granted"),
                ], body
            assert "mcp-engine tenants grant demo --secret CRM_TOKEN" in body["problems"][0]["message"]
            # the stored grant of the tenant itself opens it
            await engine.catalogue.put_tenant(Tenant(TENANT, grants=Grants(secrets=("CRM_TOKEN", "NLU"))))
            response = await client.post("/v2/flows/validate", json=document, headers={"X-Tenant-ID": TENANT})
            assert [p for p in (await response.json())["problems"] if p["severity"] == "error"] == []
    finally:
        await engine.close()


async def test_a_revoked_grant_is_refused_at_call_time(tmp_path: Path) -> None:
    seen: list[str | None] = []

    async def balance(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"data": {"balance": 1.0, "as_of": "2026-01-01"}})

    settings = engine_settings(grant_secrets="")  # nothing granted by the settings: only the stored grant
    engine = await start_engine(SQLiteStore(str(tmp_path / "e.db")), settings=settings, env=ENV)
    async with FakeIntegration() as fake:
        fake.route("GET", "/api/accounts/{account}/balance", balance)
        await engine.catalogue.put_tenant(Tenant(TENANT, grants=Grants(secrets=("CRM_TOKEN",))))
        try:
            await engine.catalogue.publish_document(flow_sending("Bearer ${env:CRM_TOKEN}", fake.url("/api")))
            from tests.engine_fixtures import Conversation

            granted = Conversation(engine, "granted", "bank")
            await granted.say("balance")
            await granted.say("12345678")
            assert seen == ["Bearer crm-secret"]
            await engine.catalogue.put_tenant(Tenant(TENANT))  # the operator takes it back
            revoked = Conversation(engine, "revoked", "bank")
            await revoked.say("balance")
            await revoked.say("12345678")
            history = await revoked.history()
        finally:
            await engine.close()
    assert seen == ["Bearer crm-secret"]  # the second call never left the engine
    (call,) = [event["data"] for event in history if event["type"] == "integration_call"]
    assert (call["outcome"], call["error"], call["attempts"]) == ("error", "mapping", 0)


def run(db: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["tenants", *args, "--db", str(db)], env={"POSTGRES_URI": None})


def test_tenants_grant_and_ungrant(tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    assert run(db, "create", "acme").exit_code == 0
    result = run(
        db, "grant", "acme", "--secret", "CRM_TOKEN", "--outbound", "10.0.0.0/8", "--max-body-bytes", "4096"
    )
    assert result.exit_code == 0, result.output
    assert "secrets CRM_TOKEN; outbound 10.0.0.0/8; max body 4096, max message default bytes" in result.output
    result = run(db, "ungrant", "acme", "--secret", "CRM_TOKEN")
    assert "secrets none; outbound 10.0.0.0/8; max body 4096" in result.output
    result = run(db, "ungrant", "acme", "--outbound", "10.0.0.0/8", "--limits")
    assert "secrets none; outbound none; max body default, max message default bytes" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--secret", "MCP_ADMIN_KEY"), "MCP_ADMIN_KEY: the engine's own configuration is never granted"),
        (("--secret", "POSTGRES_URI"), "POSTGRES_URI: the engine's own configuration is never granted"),
        (("--outbound", "intranet"), "'intranet' is not an address, a network or address:port"),
    ],
)
def test_tenants_grant_refuses_what_can_never_be_granted(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    db = tmp_path / "engine.db"
    assert run(db, "create", "acme").exit_code == 0
    result = run(db, "grant", "acme", *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "no tenant 'ghost'" in run(db, "grant", "ghost", "--secret", "X").output

"""The URL policy (issue 17, finding 2): where a tenant's flows may make the engine send requests.

The attack: an integration whose base_url is the engine's own REST port, with the admin key in its
headers, created a key for another tenant. Now refused at validation (422 with the pointer), at publish,
and at call time on the resolved address, on every redirect; ``file://`` is a 422, not a 500.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mcp_engine.security.grants import GrantBook, Grants
from mcp_engine.security.urls import OutboundPolicy, parse_allowance, static_urls
from mcp_engine.serve import EngineServer
from mcp_engine.store.base import Tenant
from mcp_engine.testing import FakeIntegration, engine_settings
from tests.engine_fixtures import TENANT, example_flow, rest_client

ADMIN_KEY = "admin-key-for-the-url-policy-test"
ENGINE_PORTS = frozenset({8002, 50051})


def policy(*allowed: str) -> OutboundPolicy:
    return OutboundPolicy(tuple(parse_allowance(item) for item in allowed), ENGINE_PORTS)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "only http and https URLs are allowed, not 'file'"),
        ("gopher://example.com/", "only http and https URLs are allowed, not 'gopher'"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata service"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is the cloud metadata service"),
        ("http://metadata.google.internal/", "metadata.google.internal is the cloud metadata service"),
        ("http://127.0.0.1:9000/", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "127.0.0.1 is a loopback address"),
        ("http://2130706433/", "127.0.0.1 is a loopback address"),
        ("http://0x7f.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://localhost:8080/", "127.0.0.1 is a loopback address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1 is a loopback address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://192.168.0.10/", "192.168.0.10 is a private address"),
        ("http://169.254.1.1/", "169.254.1.1 is a link-local address"),
        ("https://93.184.216.34:8002/", "93.184.216.34:8002 would reach the engine's own port 8002"),
        ("http:///nohost", "'http:///nohost' has no host"),
    ],
)
def test_refused_urls(url: str, why: str) -> None:
    assert policy().url_refusal(url) == why


@pytest.mark.parametrize(
    "url", ["https://api.example.com/v1", "http://93.184.216.34/", "https://[2606:4700::1111]/"]
)
def test_public_urls_pass(url: str) -> None:
    assert policy().url_refusal(url) is None


def test_an_allowance_opens_its_addresses_but_not_the_engines_own_ports() -> None:
    allowed = policy("127.0.0.1", "10.0.0.0/8")
    assert allowed.url_refusal("http://127.0.0.1:9000/") is None
    assert allowed.url_refusal("http://10.9.9.9/") is None
    assert (
        allowed.url_refusal("http://127.0.0.1:8002/")
        == "127.0.0.1:8002 would reach the engine's own port 8002"
    )
    assert allowed.url_refusal("http://192.168.1.1/") == "192.168.1.1 is a private address"
    assert (
        policy("127.0.0.1:8002").url_refusal("http://127.0.0.1:8002/") is None
    )  # named: the operator's call


@pytest.mark.parametrize("bad", ["", "nonsense", "127.0.0.1:99999", "10.0.0.0/33", "[::1"])
def test_a_bad_allowance_says_why(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not an address|out of range"):
        parse_allowance(bad)


def test_a_bad_operator_grant_stops_the_start() -> None:
    with pytest.raises(ValueError, match="'not-an-address' is not an address"):
        GrantBook(engine_settings(grant_outbound="*:not-an-address"))
    with pytest.raises(ValueError, match="MCP_GRANT_OUTBOUND: 'oops' is not 'tenant:item,item'"):
        GrantBook(engine_settings(grant_outbound="oops"))


def test_static_urls_of_a_flow() -> None:
    document = {
        "integrations": {
            "crm": {"base_url": "http://a", "extra": {"token_url": "http://b"}, "urls": ["http://c"]}
        },
        "settings": {"classifier": "http", "classifier_config": {"url": "http://d"}},
    }
    assert static_urls(document) == [
        ("/integrations/crm/base_url", "http://a"),
        ("/integrations/crm/extra/token_url", "http://b"),
        ("/integrations/crm/urls/0", "http://c"),
        ("/settings/classifier_config/url", "http://d"),
    ]


def flow_calling(base_url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The bank example with its core-banking integration at ``base_url``."""
    document = copy.deepcopy(example_flow("bank"))
    document["integrations"]["core_banking"]["base_url"] = base_url
    if headers is not None:
        document["integrations"]["core_banking"]["headers"] = headers
    return document


def problems_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (p["pointer"], p["code"]) for p in body["error"]["details"]["problems"] if p["severity"] == "error"
    ]


async def test_file_url_is_a_422_with_its_pointer_at_validation_and_publish(tmp_path: Path) -> None:
    from tests.engine_fixtures import open_engine

    async with open_engine(tmp_path / "e.db", publish=False) as engine, rest_client(engine) as client:
        headers = {"X-Tenant-ID": TENANT}
        document = flow_calling("file:///etc/passwd")
        for path in ("/v2/flows", "/v2/flows/validate"):
            response = await client.post(path, json=document, headers=headers)
            body = await response.json()
            if path == "/v2/flows":
                assert response.status == 422, body
                assert problems_of(body) == [("/integrations/core_banking/base_url", "url-refused")]
            else:
                assert response.status == 200
                assert [(p["pointer"], p["code"]) for p in body["problems"] if p["severity"] == "error"] == [
                    ("/integrations/core_banking/base_url", "url-refused")
                ]
        # stored before the policy (an upgrade): publishing it is a 422 too, never a 500
        await engine.store.save_flow_version(TENANT, document)
        response = await client.post(
            f"/v2/flows/bank/versions/{document['version']}/publish", headers=headers
        )
        assert response.status == 422, await response.text()
        assert problems_of(await response.json()) == [("/integrations/core_banking/base_url", "url-refused")]


async def test_an_outbound_webhook_the_policy_refuses_is_a_422(tmp_path: Path) -> None:
    from tests.engine_fixtures import open_engine

    async with open_engine(tmp_path / "e.db", publish=False) as engine, rest_client(engine) as client:
        for url in ("http://169.254.169.254/hook", "http://10.0.0.1/hook"):
            response = await client.put(f"/v2/tenants/{TENANT}", json={"outbound_webhook": url})
            body = await response.json()
            assert response.status == 422, body
            assert body["error"]["code"] == "url_refused"
            assert body["error"]["details"]["errors"][0]["loc"] == ["body", "outbound_webhook"]
        response = await client.put(
            f"/v2/tenants/{TENANT}", json={"outbound_webhook": "https://hooks.example.com/x"}
        )
        assert response.status in (200, 201), await response.text()


@pytest.fixture
async def engine_server(tmp_path: Path) -> AsyncIterator[EngineServer]:
    """The whole engine, auth on, with the admin key; the kit's loopback grant for every tenant."""
    settings = engine_settings(
        sqlite_path=str(tmp_path / "e.db"),
        http_port=0,
        grpc_port=0,
        auth="on",
        admin_key=ADMIN_KEY,
        grant_secrets="attacker:STOLEN_ADMIN_KEY",
        enable_visual_designer=False,
    )
    from mcp_engine.runtime.services import EngineServices

    server = EngineServer(settings, services=EngineServices(env={"STOLEN_ADMIN_KEY": ADMIN_KEY}))
    await server.start()
    yield server
    await server.stop()


async def test_finding_2_an_integration_cannot_reach_the_engines_own_port(
    engine_server: EngineServer,
) -> None:
    """The attack of finding 2, refused at validation and (with a grant taken back) at call time."""
    engine, port = engine_server.engine, engine_server.http_port
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        for tenant in ("attacker", "victim"):
            assert (await admin.put(f"{base}/v2/tenants/{tenant}", json={})).status == 201
        key = await (await admin.post(f"{base}/v2/tenants/attacker/keys")).json()
    attack = flow_calling(base + "/v2", {"Authorization": "Bearer ${env:STOLEN_ADMIN_KEY}"})
    attack["tenant_id"] = "attacker"
    attack["states"]["fetch_balance"]["config"]["endpoint"] = "/tenants/victim/keys"
    attack["states"]["fetch_balance"]["config"]["method"] = "POST"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key['key']}"}) as attacker:
        response = await attacker.post(f"{base}/v2/flows", json=attack)
        body = await response.json()
        assert response.status == 422, body
        assert problems_of(body) == [("/integrations/core_banking/base_url", "url-refused")]
        assert f"127.0.0.1:{port} would reach the engine's own port {port}" in body["error"]["message"]

        # call time: an operator opened exactly that port for the tenant, the flow was published, then the
        # grant was taken back; the next call is refused on the resolved address
        tenant = await engine.store.get_tenant("attacker")
        assert tenant is not None
        await engine.catalogue.put_tenant(Tenant("attacker", grants=Grants(outbound=(f"127.0.0.1:{port}",))))
        response = await attacker.post(f"{base}/v2/flows", json=attack)
        assert response.status == 201, await response.text()
        response = await attacker.post(
            f"{base}/v2/flows/bank/versions/{attack['version']}/publish", json=None
        )
        assert response.status == 200, await response.text()
        await engine.catalogue.put_tenant(tenant)  # the grant taken back
        reply = await attacker.post(
            f"{base}/v2/conversations/attack-1/messages",
            json={"content": {"text": "balance"}, "hints": {"force_flow": "bank"}},
        )
        assert reply.status == 200, await reply.text()
        reply = await attacker.post(
            f"{base}/v2/conversations/attack-1/messages", json={"content": {"text": "12345678"}}
        )
        assert reply.status == 200, await reply.text()
    history = await engine.store.history("attacker", "attack-1", limit=100)
    calls = [event["data"] for event in history if event["type"] == "integration_call"]
    assert [(call["outcome"], call["error"], call["status"]) for call in calls] == [
        ("error", "network", None)
    ]
    assert await engine.store.list_api_keys("victim") == []  # the admin endpoint was never reached


async def test_every_connection_and_every_redirect_is_checked(engine_server: EngineServer) -> None:
    """A tenant's session refuses a redirect to an address its policy does not allow."""
    catalogue = engine_server.engine.catalogue

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{engine_server.http_port}/v2/health")

    async with FakeIntegration() as fake:
        fake.route("GET", "/go", redirect)
        fake_port = int(fake.url().rsplit(":", 1)[1])
        await catalogue.put_tenant(Tenant("narrow", grants=Grants(outbound=(f"127.0.0.1:{fake_port}",))))
        scope = await catalogue.scope("narrow")
        with pytest.raises(aiohttp.ClientConnectorError, match="refused by the engine's URL policy"):
            await scope.http().get(fake.url("/go"))
        assert [r.path for r in fake.received] == ["/go"]  # the first hop was allowed, the second refused
        anyone = (await catalogue.scope("anyone")).http()  # the kit's loopback grant: not the engine's ports
        with pytest.raises(aiohttp.ClientConnectorError, match="would reach the engine's own port"):
            await anyone.get(f"http://127.0.0.1:{engine_server.grpc_port}/")


async def test_the_outbound_webhook_is_checked_on_delivery_too(
    engine_server: EngineServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook stored before the policy (or by another path) still cannot reach a refused address."""
    engine = engine_server.engine
    hook = f"http://127.0.0.1:{engine_server.http_port}/v2/tenants/victim/keys"
    await engine.catalogue.put_tenant(Tenant("hooked", outbound_webhook=hook))
    with caplog.at_level(logging.WARNING, logger="mcp_engine.runtime.outbound"):
        await engine.outbound.enqueue("hooked", "c-1", [{"type": "text", "text": "reminder"}])
        await engine.outbound.drain()
    assert "refused by the engine's URL policy" in caplog.text
    assert await engine.store.list_api_keys("victim") == []

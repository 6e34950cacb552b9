"""The one URL policy: where a tenant's flows may make the engine send HTTP requests.

Checked three times, each as cheaply as it can be: a flow's static URLs (integration ``base_url``,
a classifier's ``url``, any ``url``/``*_url``/``urls`` field of an integration or classifier config)
when it is validated and published, a tenant's outbound webhook when it is set, and every connection
the engine opens for a tenant, on the address DNS resolved (``OutboundPolicy.socket_factory``, the
connector's hook; so a name that resolves to a private address, a rebinding DNS answer and every
redirect hop are refused as well) — a pooled connection was checked when it was opened.

Refused unless an operator allows it for the tenant: any scheme but http/https, loopback, link-local
(the cloud metadata service 169.254.169.254 among them), private and reserved ranges (fd00:ec2::254
among them), and the engine's own REST and gRPC ports on any address. An allowance is an address or a
network, optionally with a port (``127.0.0.1``, ``10.0.0.0/8``, ``[::1]:8080``); one without a port
still leaves out the engine's own ports, which only an allowance naming that port opens.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from aiohappyeyeballs import AddrInfoType
from yarl import URL

from mcp_engine.flow.problems import Problem, pointer

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")
METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")  # 2130706433, 0x7f.1, 127.1: getaddrinfo reads them as IPv4
_URL_KEYS = ("url", "base_url", "urls")


class OutboundRefused(ConnectionRefusedError):
    """A connection the URL policy refuses (an ``OSError``, so aiohttp reports it as a connect error)."""


@dataclass(frozen=True)
class Allowance:
    network: Network
    port: int | None  # None: any port but the engine's own

    def covers(self, address: Address, port: int, own_ports: Collection[int]) -> bool:
        if address not in self.network:
            return False
        return port == self.port if self.port is not None else port not in own_ports


def parse_allowance(text: str) -> Allowance:
    """``127.0.0.1``, ``127.0.0.1:8080``, ``10.0.0.0/8``, ``::1``, ``[::1]:8080``; ``ValueError`` says why."""
    host, port = text.strip(), None
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"'{text}' is not an address, a network or address:port")
        port = rest[1:] if rest else None
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        network = ipaddress.ip_network(host, strict=False)
        number = int(port) if port is not None else None
    except ValueError:
        raise ValueError(f"'{text}' is not an address, a network or address:port") from None
    if number is not None and not 0 < number < 65536:
        raise ValueError(f"'{text}': port {number} is out of range")
    return Allowance(network, number)


@lru_cache(maxsize=4096)
def _kind(address: Address) -> str | None:
    """What makes ``address`` off limits by default, or None for a public address."""
    if address in METADATA:
        return "the cloud metadata service"
    for attribute, kind in (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_unspecified", "an unspecified"),
        ("is_multicast", "a multicast"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(address, attribute):
            return f"{kind} address"
    return None if address.is_global else "a non-public address"


class OutboundPolicy:
    """One tenant's URL policy: the operator's allowances and the engine's own ports (a live set: the
    server adds the ports it bound)."""

    def __init__(self, allowances: tuple[Allowance, ...], own_ports: Collection[int]) -> None:
        self.allowances = allowances
        self.own_ports = own_ports

    def address_refusal(self, host: str, port: int) -> str | None:
        """Why the engine may not connect to ``host`` (an IP address) on ``port``, else None."""
        address = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(allowed.covers(address, port, self.own_ports) for allowed in self.allowances):
            return None
        if port in self.own_ports:
            return f"{address}:{port} would reach the engine's own port {port}"
        kind = _kind(address)
        return None if kind is None else f"{address} is {kind}"

    def url_refusal(self, url: str) -> str | None:
        """Why ``url`` is refused before any DNS lookup (scheme, a literal address, localhost), else None;
        a host name is checked on each connection, on the addresses it resolves to."""
        try:
            parsed = URL(url)
            port = parsed.port
        except (ValueError, TypeError):
            return f"'{url}' is not a URL"
        if parsed.scheme not in SCHEMES:
            return f"only http and https URLs are allowed, not '{parsed.scheme or url}'"
        host = (parsed.host or "").rstrip(".").lower()
        if not host or port is None:
            return f"'{url}' has no host"
        literal = _literal_address(host)
        if literal is not None:
            return self.address_refusal(literal, port)
        if host == "localhost" or host.endswith(".localhost"):
            return self.address_refusal("127.0.0.1", port)
        if host in METADATA_NAMES:
            return f"{host} is the cloud metadata service"
        return None

    def socket_factory(self, addr_info: AddrInfoType) -> socket.socket:
        """aiohttp's connector hook: refuse the connection before it is made, on the resolved address."""
        family, kind, proto, _, address = addr_info
        reason = self.address_refusal(address[0], address[1])
        if reason is not None:
            raise OutboundRefused(errno.EACCES, f"refused by the engine's URL policy: {reason}")
        return socket.socket(family, kind, proto)


def _literal_address(host: str) -> str | None:
    """The IP address ``host`` is (legacy IPv4 spellings included), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def static_urls(document: object) -> list[tuple[str, str]]:
    """(pointer, URL) of every outbound URL a flow document names statically: ``url``, ``base_url``,
    ``*_url`` and ``urls`` fields of its integrations and of its classifier config."""
    if not isinstance(document, dict):
        return []
    found: list[tuple[str, str]] = []
    integrations = document.get("integrations")
    if isinstance(integrations, dict):
        for name, integration in integrations.items():
            _collect(integration, ("integrations", name), found)
    settings = document.get("settings")
    if isinstance(settings, dict):
        _collect(settings.get("classifier_config"), ("settings", "classifier_config"), found)
    return found


def _collect(node: object, path: tuple[str | int, ...], found: list[tuple[str, str]]) -> None:
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        at = (*path, key)
        is_url = key in _URL_KEYS or (isinstance(key, str) and key.endswith("_url"))
        if is_url and isinstance(value, str):
            found.append((pointer(*at), value))
        elif is_url and isinstance(value, list):
            found.extend((pointer(*at, i), item) for i, item in enumerate(value) if isinstance(item, str))
        elif isinstance(value, dict):
            _collect(value, at, found)


def url_problems(document: object, policy: OutboundPolicy, tenant_id: str) -> list[Problem]:
    """A ``url-refused`` error for each static URL of ``document`` the tenant's policy refuses."""
    problems = []
    for at, url in static_urls(document):
        reason = policy.url_refusal(url)
        if reason is not None:
            problems.append(
                Problem(
                    "error",
                    at,
                    f"{reason}; tenant '{tenant_id}' may not call it (an operator allows an address for a"
                    " tenant: mcp-engine tenants grant TENANT --outbound ADDRESS, or MCP_GRANT_OUTBOUND)",
                    "url-refused",
                )
            )
    return problems

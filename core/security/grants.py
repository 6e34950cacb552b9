"""What an operator grants a tenant: secret names, outbound addresses, and size limits.

Grants come from two places and add up: stored with the tenant (``mcp-engine tenants grant``) and the
operator's settings (``MCP_GRANT_SECRETS``, ``MCP_GRANT_OUTBOUND``: ``tenant:item,item;*:item``, ``*`` for
every tenant). A tenant itself can never grant anything: ``PUT /v2/tenants`` does not touch them.
Size limits are the tenant's stored override, else the operator's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcp_engine.config import EngineSettings
from mcp_engine.security.urls import OutboundPolicy, parse_allowance

EVERY_TENANT = "*"
MERGED_CACHE = 4096


@dataclass(frozen=True)
class Grants:
    """One tenant's grants; ``max_*`` None: the operator's default applies."""

    secrets: tuple[str, ...] = ()
    outbound: tuple[str, ...] = ()
    max_body_bytes: int | None = None
    max_message_bytes: int | None = None

    def to_json(self) -> dict[str, Any] | None:
        """What the store keeps (None when nothing is granted)."""
        if self == Grants():
            return None
        return {
            "secrets": list(self.secrets),
            "outbound": list(self.outbound),
            "max_body_bytes": self.max_body_bytes,
            "max_message_bytes": self.max_message_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Grants:
        if not data:
            return cls()
        return cls(
            tuple(data.get("secrets") or ()),
            tuple(data.get("outbound") or ()),
            data.get("max_body_bytes"),
            data.get("max_message_bytes"),
        )

    def adding(self, other: Grants) -> Grants:
        """Both grants' names; this one's limits where it sets them, else ``other``'s."""
        return Grants(
            tuple(dict.fromkeys([*self.secrets, *other.secrets])),
            tuple(dict.fromkeys([*self.outbound, *other.outbound])),
            self.max_body_bytes if self.max_body_bytes is not None else other.max_body_bytes,
            self.max_message_bytes if self.max_message_bytes is not None else other.max_message_bytes,
        )


def check_grants(grants: Grants) -> None:
    """``ValueError`` for a grant that can never work: an outbound item that is no address, or a secret
    that is the engine's own configuration."""
    from mcp_engine.security.secrets import never_granted

    for item in grants.outbound:
        parse_allowance(item)
    if refused := [name for name in grants.secrets if never_granted(name)]:
        raise ValueError(f"{', '.join(refused)}: the engine's own configuration is never granted")


def parse_grant_setting(text: str | None, setting: str) -> dict[str, tuple[str, ...]]:
    """``"acme:A,B;*:C"`` -> ``{"acme": ("A", "B"), "*": ("C",)}``; ``ValueError`` names the setting."""
    out: dict[str, tuple[str, ...]] = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        tenant, colon, items = part.partition(":")
        names = tuple(item.strip() for item in items.split(",") if item.strip())
        if not colon or not tenant.strip() or not names:
            raise ValueError(f"{setting}: '{part}' is not 'tenant:item,item' (tenant '*' is every tenant)")
        out[tenant.strip()] = out.get(tenant.strip(), ()) + names
    return out


@dataclass
class GrantBook:
    """The operator's side of grants for one engine: settings' grants, default limits, its own ports."""

    settings: EngineSettings
    own_ports: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._secrets = parse_grant_setting(self.settings.grant_secrets, "MCP_GRANT_SECRETS")
        self._outbound = parse_grant_setting(self.settings.grant_outbound, "MCP_GRANT_OUTBOUND")
        for items in self._outbound.values():
            for item in items:
                parse_allowance(item)  # a typo stops the start, not a tenant's call later
        self.own_ports |= {self.settings.http_port, self.settings.grpc_port}
        self._policies: dict[tuple[str, ...], OutboundPolicy] = {}
        self._merged: dict[tuple[str, Grants | None], Grants] = {}

    def of(self, tenant_id: str, stored: Grants | None) -> Grants:
        """The tenant's grants: stored ones plus the settings' (for it and for every tenant); merged once
        per tenant and stored grants (a turn asks twice)."""
        found = self._merged.get((tenant_id, stored))
        if found is None:
            if len(self._merged) >= MERGED_CACHE:
                self._merged.clear()
            found = self._merged[(tenant_id, stored)] = self._merge(tenant_id, stored)
        return found

    def _merge(self, tenant_id: str, stored: Grants | None) -> Grants:
        from_settings = Grants(
            self._secrets.get(tenant_id, ()) + self._secrets.get(EVERY_TENANT, ()),
            self._outbound.get(tenant_id, ()) + self._outbound.get(EVERY_TENANT, ()),
            self.settings.max_body_bytes,
            self.settings.max_message_bytes,
        )
        return (stored or Grants()).adding(from_settings)

    def policy(self, grants: Grants) -> OutboundPolicy:
        """The URL policy of ``grants`` (one per distinct set of outbound grants, made once)."""
        key = tuple(sorted(grants.outbound))
        found = self._policies.get(key)
        if found is None:
            found = self._policies[key] = OutboundPolicy(
                tuple(parse_allowance(item) for item in key), self.own_ports
            )
        return found

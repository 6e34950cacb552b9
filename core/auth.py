"""Tenant authentication: which tenant a request acts for, decided by its API key (SPEC §7 "Auth").

Keys look like ``mcpk_<key_id>_<secret>``: the readable prefix tells an operator (and a secret scanner)
what the string is and which key to revoke; the secret is ``secrets.token_urlsafe(32)`` (256 random bits).
The store keeps only the SHA-256 of the whole key. A fast unsalted hash is right here, unlike for
passwords: slow salted hashes (bcrypt, argon2) exist to make guessing a low-entropy secret expensive, and
nobody guesses 256 random bits; a plain digest also lets a request find its key by an indexed lookup
instead of verifying a slow hash per request.

Mode "off" (the embedded default for local use) trusts the tenant a request names and ignores any
``Authorization`` header: off means nothing is checked, so a client configured with a key works the same
against a local engine, and nobody mistakes a half-checked mode for security.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from mcp_engine.config import EngineSettings
from mcp_engine.errors import InvalidInput, PermissionDenied, Unauthenticated
from mcp_engine.flow.models import FLOW_ID_PATTERN
from mcp_engine.store.base import ApiKey, Store, Tenant

AuthMode = Literal["on", "off"]
KEY_PREFIX = "mcpk_"
CACHE_TTL_S = 5.0
CACHE_SIZE = 1024
_TENANT_ID = re.compile(FLOW_ID_PATTERN)


def hash_key(key: str) -> str:
    """The SHA-256 (hex) of a key: all the store ever sees of it."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header (the scheme is case-insensitive, RFC 7235)."""
    if not authorization:
        raise Unauthenticated("no API key: send 'Authorization: Bearer <key>'")
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or " " in key:
        raise Unauthenticated("the Authorization header must be 'Bearer <key>'")
    return key


class Authenticator:
    """Answers "which tenant is this request for?" and manages tenants and their keys.

    Verified key hashes are cached in process for ``cache_ttl_s`` (bounded to ``cache_size`` entries), so
    a busy client does not cost a store round trip per request. The price: a key revoked by another
    process (``mcp-engine tenants revoke``, another engine) still works here for at most ``cache_ttl_s``;
    a key revoked through this instance stops at once. Unknown keys are not cached, so a new key works
    immediately.
    """

    def __init__(
        self,
        store: Store,
        mode: AuthMode,
        admin_key: str | None,
        *,
        cache_ttl_s: float = CACHE_TTL_S,
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.mode = mode
        self._admin_key = admin_key.encode() if admin_key else None
        self._cache_ttl_s = cache_ttl_s
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()  # hash -> (key, expires)

    @classmethod
    def from_settings(cls, store: Store, settings: EngineSettings) -> Authenticator:
        """The authenticator ``settings`` ask for (``auth_mode``, ``MCP_ADMIN_KEY``)."""
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        return cls(store, settings.auth_mode, admin)

    async def tenant(self, authorization: str | None, claimed: str | None) -> str:
        """The tenant the request acts for; ``claimed`` is the one it names (header, field), if any.

        Mode "on": the key's tenant, and naming another is ``PermissionDenied``; the admin key acts for
        the tenant it names (which it must). Mode "off": the named tenant, unchecked.
        """
        if self.mode == "off":
            if not claimed:
                raise InvalidInput("name the tenant with X-Tenant-ID or tenant_id, or turn auth on")
            return claimed
        key = bearer(authorization)
        if self._is_admin(key):
            if not claimed:
                raise InvalidInput("the admin key acts for any tenant: name it with X-Tenant-ID or tenant_id")
            return claimed
        found = await self._verify(key)
        if claimed and claimed != found.tenant_id:
            raise PermissionDenied("this key belongs to another tenant")
        return found.tenant_id

    async def admin(self, authorization: str | None) -> None:
        """Refuse (``Unauthenticated``) anything but the admin key."""
        if self._admin_key is None:
            raise Unauthenticated("no admin key is configured: set MCP_ADMIN_KEY")
        if not self._is_admin(bearer(authorization)):
            raise Unauthenticated("this is not the admin key")

    async def create_tenant(self, tenant_id: str) -> Tenant:
        """A new tenant (no default flow, every plugin); an existing one is refused, not overwritten."""
        if not _TENANT_ID.fullmatch(tenant_id):
            raise InvalidInput(
                f"bad tenant id {tenant_id!r}: 1-64 of a-z, 0-9, '_', '-', starting with a letter or digit",
                {"tenant_id": tenant_id},
            )
        if await self.store.get_tenant(tenant_id) is not None:
            raise InvalidInput(f"tenant '{tenant_id}' already exists", {"tenant_id": tenant_id})
        tenant = Tenant(tenant_id)
        await self.store.put_tenant(tenant)
        return tenant

    async def create_key(self, tenant_id: str) -> tuple[str, str]:
        """A new key for an existing tenant: ``(key_id, key)``. The key is not kept: this is the only
        time anyone sees it."""
        await self._existing(tenant_id)
        key_id = secrets.token_hex(6)  # hex: no '_' in it, so the prefix reads unambiguously
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        await self.store.put_api_key(tenant_id, key_id, hash_key(key))
        return key_id, key

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        """Revoke a key (at once in this process); False when the tenant has no live key of that id."""
        revoked = await self.store.revoke_api_key(tenant_id, key_id)
        for key_hash, (key, _) in list(self._verified.items()):
            if (key.tenant_id, key.key_id) == (tenant_id, key_id):
                del self._verified[key_hash]
        return revoked

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, live and revoked (never a secret: the store has none)."""
        await self._existing(tenant_id)
        return await self.store.list_api_keys(tenant_id)

    def _is_admin(self, key: str) -> bool:
        return self._admin_key is not None and hmac.compare_digest(key.encode(), self._admin_key)

    async def _verify(self, key: str) -> ApiKey:
        """The live key ``key`` is, from the cache while fresh, else from the store."""
        key_hash, now = hash_key(key), self._clock()
        cached = self._verified.get(key_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await self.store.find_api_key(key_hash)
        if found is None:
            self._verified.pop(key_hash, None)
            raise Unauthenticated("unknown or revoked API key")
        self._verified[key_hash] = (found, now + self._cache_ttl_s)
        self._verified.move_to_end(key_hash)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return found

    async def _existing(self, tenant_id: str) -> None:
        if await self.store.get_tenant(tenant_id) is None:
            raise InvalidInput(
                f"no tenant '{tenant_id}': create it with `mcp-engine tenants create {tenant_id}`",
                {"tenant_id": tenant_id},
            )

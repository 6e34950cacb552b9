"""The production store's pending outbound webhook deliveries, in PostgreSQL (the truth; Redis keeps none)."""

from __future__ import annotations

from mcp_engine.store.base import Delivery
from mcp_engine.store.postgres_pool import PoolUser, count, outage_is_unavailable

_DELIVERY = "delivery_id, tenant_id, conversation_id, body, attempts, next_at, created_at"


class DeliveryTables(PoolUser):
    """Outbound deliveries: the ``Store`` methods of the same names."""

    @outage_is_unavailable
    async def add_delivery(self, delivery: Delivery) -> None:
        await self._db().execute(
            f"INSERT INTO outbound_deliveries ({_DELIVERY}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            delivery.delivery_id,
            delivery.tenant_id,
            delivery.conversation_id,
            delivery.body,
            delivery.attempts,
            delivery.next_at,
            delivery.created_at,
        )

    @outage_is_unavailable
    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        rows = await self._db().fetch(
            f"SELECT {_DELIVERY} FROM outbound_deliveries WHERE next_at <= $1 ORDER BY next_at LIMIT $2",
            now,
            limit,
        )
        return [Delivery(*row) for row in rows]

    @outage_is_unavailable
    async def claim_delivery(self, delivery: Delivery, until: float, now: float) -> bool:
        status = await self._db().execute(
            "UPDATE outbound_deliveries SET next_at = $1 WHERE delivery_id = $2 AND next_at <= $3",
            until,
            delivery.delivery_id,
            now,
        )
        return count(status) == 1

    @outage_is_unavailable
    async def defer_delivery(self, delivery_id: str, attempts: int, next_at: float) -> None:
        await self._db().execute(
            "UPDATE outbound_deliveries SET attempts = $1, next_at = $2 WHERE delivery_id = $3",
            attempts,
            next_at,
            delivery_id,
        )

    @outage_is_unavailable
    async def finish_delivery(self, delivery_id: str) -> None:
        await self._db().execute("DELETE FROM outbound_deliveries WHERE delivery_id = $1", delivery_id)

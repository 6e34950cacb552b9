"""The embedded store's pending outbound webhook deliveries (the SQLite twin of ``postgres_outbound``)."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite

from mcp_engine.store.base import Delivery

_DELIVERY = "delivery_id, tenant_id, conversation_id, body, attempts, next_at, created_at"


class DeliveryRows(ABC):
    """Outbound deliveries: the ``Store`` methods of the same names, on ``SQLiteStore``'s reads/writes."""

    @abstractmethod
    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]: ...

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def add_delivery(self, delivery: Delivery) -> None:
        row = (delivery.delivery_id, delivery.tenant_id, delivery.conversation_id, delivery.body)
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO outbound_deliveries ({_DELIVERY}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*row, delivery.attempts, delivery.next_at, delivery.created_at),
            )

    async def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        rows = await self._read(
            f"SELECT {_DELIVERY} FROM outbound_deliveries WHERE next_at <= ? ORDER BY next_at LIMIT ?",
            (now, limit),
        )
        return [Delivery(*row) for row in rows]

    async def claim_delivery(self, delivery: Delivery, until: float, now: float) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE outbound_deliveries SET next_at = ? WHERE delivery_id = ? AND next_at <= ?",
                (until, delivery.delivery_id, now),
            )
            return cursor.rowcount == 1

    async def defer_delivery(self, delivery_id: str, attempts: int, next_at: float) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE outbound_deliveries SET attempts = ?, next_at = ? WHERE delivery_id = ?",
                (attempts, next_at, delivery_id),
            )

    async def finish_delivery(self, delivery_id: str) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM outbound_deliveries WHERE delivery_id = ?", (delivery_id,))

"""Adds outbox rows inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.outbox.table import OutboxStatus


class OutboxMessage(msgspec.Struct, frozen=True):
    id: uuid.UUID
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: Mapping[str, Any]
    headers: Mapping[str, str]
    created_at: datetime


class OutboxWriter:
    """Writes to the outbox on the unit of work's connection; the commit publishes nothing."""

    def __init__(self, connection: AsyncConnection, table: Table) -> None:
        self._connection = connection
        self._table = table

    async def add(self, message: OutboxMessage) -> None:
        await self._connection.execute(
            insert(self._table).values(
                id=message.id,
                aggregate_type=message.aggregate_type,
                aggregate_id=message.aggregate_id,
                event_type=message.event_type,
                payload=dict(message.payload),
                headers=dict(message.headers),
                status=OutboxStatus.PENDING.value,
                attempts=0,
                created_at=message.created_at,
            )
        )

"""A read model of the outbox backlog for the console's overview (one query, no transaction to speak of).

Pending rows are read through the partial index of pending rows; failed (parked) rows are
few by construction, so the per-customer figures cost little even on a large table.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import DatabaseError
from services.profile.adapters.tables import SCHEMA

_BACKLOG = text(f"""
    WITH parked AS (SELECT DISTINCT aggregate_id FROM "{SCHEMA}".outbox WHERE status = 'failed')
    SELECT
        (SELECT count(*) FROM "{SCHEMA}".outbox WHERE status = 'pending') AS pending,
        (SELECT min(created_at) FROM "{SCHEMA}".outbox WHERE status = 'pending') AS oldest_pending_at,
        (SELECT count(*) FROM "{SCHEMA}".outbox WHERE status = 'failed') AS failed,
        (SELECT count(*) FROM parked) AS blocked_customers,
        (SELECT count(*) FROM "{SCHEMA}".outbox o JOIN parked p USING (aggregate_id)
         WHERE o.status = 'pending') AS waiting_behind_failed
""")  # noqa: S608 - the schema name is a constant


class OutboxBacklog(msgspec.Struct, frozen=True):
    pending: int
    oldest_pending_at: datetime | None
    failed: int
    # Customers with a parked row: their later rows wait behind it until it is re-driven.
    blocked_customers: int
    waiting_behind_failed: int


class SqlOutboxBacklog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(self) -> OutboxBacklog:
        try:
            async with self._engine.connect() as connection:
                row = (await connection.execute(_BACKLOG)).mappings().one()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from exc
        return OutboxBacklog(**row)

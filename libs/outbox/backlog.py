"""The outbox backlog, read with one query: pending rows and the oldest one's age, parked rows, the customers
they block and the rows waiting behind them.

Two readers: ``watch_backlog`` refreshes the relay's gauges on a connection of its own, and
``OutboxBacklogReader`` answers a page (the console's overview) from an engine. Pending rows are read
through the partial index of pending rows; parked rows are few by construction, so the per-customer
figures cost little even on a large table.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import asyncpg
import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import DatabaseError
from libs.kit.logging import get_logger
from libs.kit.metrics import MetricSet, gauge

log = get_logger(__name__)


class OutboxBacklog(msgspec.Struct, frozen=True):
    pending: int
    oldest_pending_at: datetime | None
    # By the database's clock; 0 with nothing pending.
    oldest_pending_age_s: float
    failed: int
    # Customers with a parked row: their later rows wait behind it until it is re-driven.
    blocked_customers: int
    waiting_behind_failed: int


def backlog_query(schema: str) -> str:
    """The one backlog query (no parameters) of ``schema``'s outbox; its columns are ``OutboxBacklog``'s."""
    outbox = f'"{schema}".outbox'
    return f"""
    WITH parked AS (SELECT DISTINCT aggregate_id FROM {outbox} WHERE status = 'failed'),
    pending AS (SELECT count(*) AS total, min(created_at) AS oldest FROM {outbox} WHERE status = 'pending')
    SELECT
        pending.total AS pending,
        pending.oldest AS oldest_pending_at,
        CAST(coalesce(extract(epoch FROM now() - pending.oldest), 0) AS double precision) AS oldest_pending_age_s,
        (SELECT count(*) FROM {outbox} WHERE status = 'failed') AS failed,
        (SELECT count(*) FROM parked) AS blocked_customers,
        (SELECT count(*) FROM {outbox} o JOIN parked p USING (aggregate_id)
         WHERE o.status = 'pending') AS waiting_behind_failed
    FROM pending
    """  # noqa: S608 - the schema name is the service's constant


class OutboxBacklogReader:
    """The backlog on one of ``engine``'s connections; a lost database is ``DatabaseError`` (503)."""

    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self._engine = engine
        self._query = text(backlog_query(schema))

    async def read(self) -> OutboxBacklog:
        try:
            async with self._engine.connect() as connection:
                row = (await connection.execute(self._query)).mappings().one()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from exc
        return OutboxBacklog(**row)


class BacklogMetrics(MetricSet):
    pending = gauge("outbox_pending_rows", "Outbox rows not yet published")
    oldest_pending_age = gauge("outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row")
    parked = gauge("outbox_parked_rows", "Outbox rows parked as failed")


async def watch_backlog(dsn: str, schema: str, metrics: BacklogMetrics, interval_s: float, stop: asyncio.Event) -> None:
    """Refresh the gauges every interval; the partial indexes keep the query O(backlog)."""
    query = backlog_query(schema)
    connection: asyncpg.Connection | None = None
    while not stop.is_set():
        try:
            if connection is None or connection.is_closed():
                connection = await asyncpg.connect(dsn)
            row = await connection.fetchrow(query)
        except DATABASE_ERRORS as exc:
            log.warning("backlog_query_failed", error=repr(exc))
            connection = None
        else:
            metrics.pending.set(row["pending"])
            metrics.oldest_pending_age.set(row["oldest_pending_age_s"])
            metrics.parked.set(row["failed"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    if connection is not None and not connection.is_closed():
        await connection.close()

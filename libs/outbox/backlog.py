"""Backlog gauges of one outbox: pending rows, the oldest pending row's age, parked rows."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.logging import get_logger

log = get_logger(__name__)


class BacklogMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge("outbox_pending_rows", "Outbox rows not yet published", registry=registry)
        self.oldest_pending_age = Gauge(
            "outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row", registry=registry
        )
        self.parked = Gauge("outbox_parked_rows", "Outbox rows parked as failed", registry=registry)


async def watch_backlog(dsn: str, schema: str, metrics: BacklogMetrics, interval_s: float, stop: asyncio.Event) -> None:
    """Refresh the gauges every interval; the partial indexes keep the queries O(backlog)."""
    query = (
        f"SELECT (SELECT count(*) FROM \"{schema}\".outbox WHERE status = 'pending') AS pending, "  # noqa: S608
        f'(SELECT extract(epoch FROM now() - min(created_at)) FROM "{schema}".outbox '
        f"WHERE status = 'pending') AS oldest, "
        f"(SELECT count(*) FROM \"{schema}\".outbox WHERE status = 'failed') AS parked"
    )
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
            metrics.oldest_pending_age.set(float(row["oldest"] or 0.0))
            metrics.parked.set(row["parked"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    if connection is not None and not connection.is_closed():
        await connection.close()

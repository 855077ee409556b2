"""Retention: published rows older than ``retention_s`` leave the table in bounded batches.

Each instance cleans the shards it holds, between its batches, on its own connection.
A batch is one ``DELETE`` of at most ``cleanup_batch_size`` rows found through the
partial index ``(shard, published_at) WHERE status = 'published'``, so its cost does not
depend on the table size; one run does at most ``cleanup_max_batches`` of them. Pending
and failed rows are never removed. Claiming stays O(batch) because it reads the partial
index of pending rows only, however many published rows the table holds.
"""

from __future__ import annotations

import time
from collections.abc import Collection

import asyncpg

from libs.kit.logging import get_logger
from libs.outbox.metrics import RelayMetrics
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)


class Retention:
    def __init__(self, settings: RelaySettings, metrics: RelayMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._next_run = 0.0
        table = f'"{settings.schema}".outbox'
        # ``= ANY(ARRAY(...))``: the batch's ids first, then primary-key look-ups; a join could
        # hash the whole table.
        self._sql = (
            f"DELETE FROM {table} WHERE id = ANY(ARRAY(SELECT id FROM {table} WHERE status = 'published' "  # noqa: S608
            f"AND shard = ANY($1::smallint[]) AND published_at < now() - make_interval(secs => $2) LIMIT $3))"
        )

    def due(self) -> bool:
        return time.monotonic() >= self._next_run

    async def run(self, conn: asyncpg.Connection, shards: Collection[int]) -> int:
        """Delete old published rows of ``shards``; return how many."""
        self._next_run = time.monotonic() + self._settings.cleanup_interval_s
        if not shards:
            return 0
        deleted = 0
        for _ in range(self._settings.cleanup_max_batches):
            status: str = await conn.execute(
                self._sql, sorted(shards), self._settings.retention_s, self._settings.cleanup_batch_size
            )
            count = int(status.rsplit(" ", 1)[-1])
            deleted += count
            if count < self._settings.cleanup_batch_size:
                break
        if deleted:
            self._metrics.retention_deleted.inc(deleted)
            log.info("outbox_retention_deleted", rows=deleted, shards=len(shards))
        return deleted

"""Which keys a parked row blocks: a gauge, a labelled gauge per key, a log line per newly blocked key."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from libs.kit.logging import get_logger
from libs.outbox.metrics import RelayMetrics
from libs.outbox.settings import RelaySettings

log = get_logger(__name__)


class BlockedKeys:
    """Reports the blocked keys of the shards this instance holds (refreshed by the lease keeper)."""

    def __init__(self, settings: RelaySettings, metrics: RelayMetrics) -> None:
        self._metrics = metrics
        self._limit = settings.blocked_keys_metric_limit
        table = f'"{settings.schema}".outbox'
        # The first parked row of each blocked key, oldest first, and how many rows wait behind it.
        self._sql = (
            f"SELECT k.aggregate_id, k.id, k.shard, count(*) OVER () AS total, "  # noqa: S608
            f"(SELECT count(*) FROM {table} w WHERE w.aggregate_id = k.aggregate_id AND w.status = 'pending') "
            f"AS waiting FROM (SELECT DISTINCT ON (aggregate_id) aggregate_id, id, seq, shard FROM {table} "
            f"WHERE status = 'failed' AND shard = ANY($1::smallint[]) ORDER BY aggregate_id, seq) k "
            f"ORDER BY k.seq LIMIT $2"
        )
        self._known: dict[str, int] = {}  # aggregate id -> shard

    async def refresh(self, conn: asyncpg.Connection, shards: Collection[int]) -> None:
        records = await conn.fetch(self._sql, sorted(shards), self._limit) if shards else []
        self._metrics.blocked_keys.set(records[0]["total"] if records else 0)
        self._metrics.blocked_key.clear()
        current: dict[str, int] = {}
        for record in records:
            aggregate_id: str = record["aggregate_id"]
            current[aggregate_id] = record["shard"]
            self._metrics.blocked_key.labels(aggregate_id, str(record["id"])).set(1)
            if aggregate_id not in self._known:
                log.warning(
                    "outbox_key_blocked",
                    aggregate_id=aggregate_id,
                    outbox_id=str(record["id"]),
                    shard=record["shard"],
                    waiting_rows=record["waiting"],
                    action="re-drive the parked row once its cause is fixed",
                )
        for aggregate_id, shard in self._known.items():
            # A key of a shard we handed over is not unblocked, just no longer ours to report.
            if aggregate_id not in current and shard in shards:
                log.info("outbox_key_unblocked", aggregate_id=aggregate_id, shard=shard)
        self._known = current

"""Retention of the sync schema (invariant 8): old finished rows go, in bounded batches, the lanes stay.

``python -m services.sync_connector maintenance`` (daily: the k8s CronJob, make run's timer) removes
what is older than ``retention_days``:

* terminal records (``success``, ``superseded``, ``failed``; a failed one once its dead letters are
  published, so not while its dead letter still has to reach the topic, and never one a re-drive
  made open again) with their attempts and dead letters;
* finished notification records (sent, failed, skipped) with their attempts;
* messages the connector could never process, once published to their dead-letter topic;
* admin actions (the audit log; its trigger lets only this prune delete, and only rows over a day old);
* admin notification windows that ended (sent or failed) with what they counted;
* the maintenance runs themselves.

Never the lanes (``sync.customer_sync_state``): each (customer, system)'s applied version is what
refuses a stale event (``lanes.judge``), so it is kept for good; it is one row per customer and
system, not per event. Open records are never touched.

Each batch is one transaction: it locks at most ``batch_size`` records (``FOR UPDATE SKIP LOCKED``:
rows a delivery or an admin holds are left for the next run) and deletes their attempts and dead
letters in statements of at most ``batch_size`` rows, then the records. Nobody else waits for
these rows: they are finished and old. The records' delete triggers keep the status counts right.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.logging import get_logger
from libs.kit.metrics import MetricSet, counter, histogram
from libs.kit.progress import Progress, no_progress
from services.sync_connector import status_counts

log = get_logger(__name__)

TASK = "retention"
RECORDS, ATTEMPTS, DEAD_LETTERS = "external_sync_records", "external_sync_attempts", "dead_letters"
NOTIFICATIONS, NOTIFICATION_ATTEMPTS = "notification_records", "notification_attempts"
UNPROCESSABLE, ADMIN_ACTIONS, MAINTENANCE_RUNS = "unprocessable_messages", "admin_actions", "maintenance_runs"
ADMIN_NOTIFICATIONS, ADMIN_OCCURRENCES = "admin_notifications", "admin_occurrences"
TABLES = (
    RECORDS,
    ATTEMPTS,
    DEAD_LETTERS,
    NOTIFICATIONS,
    NOTIFICATION_ATTEMPTS,
    UNPROCESSABLE,
    ADMIN_ACTIONS,
    ADMIN_NOTIFICATIONS,
    ADMIN_OCCURRENCES,
    MAINTENANCE_RUNS,
)


def _children_of(table: str, parent_column: str) -> TextClause:
    """At most :limit rows of ``table`` that belong to the rows :ids (a batch being pruned)."""
    return text(f"""
    DELETE FROM sync.{table} WHERE id IN (
        SELECT id FROM sync.{table} WHERE {parent_column} = ANY(CAST(:ids AS bigint[])) LIMIT :limit)
    """)  # noqa: S608 - fixed names, values are bound parameters


class _Family(NamedTuple):
    """Rows pruned with the rows that belong to them: a locked batch of ``table``'s rows, then their
    children (each child table at most batch_size rows per statement), then the batch itself."""

    table: str
    batch: TextClause
    children: tuple[tuple[str, TextClause], ...]  # (child table, its delete)
    rows: TextClause


def _family(table: str, batch: TextClause, parent_column: str, *children: str) -> _Family:
    """``children`` name their row of ``table`` in ``parent_column``."""
    return _Family(
        table,
        batch,
        tuple((child, _children_of(child, parent_column)) for child in children),
        text(f"DELETE FROM sync.{table} WHERE id = ANY(CAST(:ids AS bigint[]))"),  # noqa: S608 - fixed names
    )


_NOW_AND_CUTOFF = text("SELECT now(), now() - make_interval(secs => :older_than_s)")
# Terminal records by completion time (ix_sync_terminal_completed). Not one whose dead letter is still
# to be published, nor one a lane names as in flight (a claim not cleaned up yet).
_RECORD_BATCH = text("""
    SELECT r.id FROM sync.external_sync_records r
    WHERE r.sync_status IN ('success', 'superseded', 'failed') AND r.completed_at < :cutoff
      AND NOT EXISTS (SELECT 1 FROM sync.dead_letters d WHERE d.record_id = r.id AND d.published_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM sync.customer_sync_state s
                      WHERE s.system_code = r.system_code AND s.customer_id = r.customer_id
                        AND s.inflight_record_id = r.id)
    ORDER BY r.completed_at
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
""")
_RECORDS = _family(RECORDS, _RECORD_BATCH, "record_id", ATTEMPTS, DEAD_LETTERS)
# Finished notifications by completion time (ix_notification_terminal_completed).
_NOTIFICATION_BATCH = text("""
    SELECT id FROM sync.notification_records
    WHERE status NOT IN ('pending', 'retrying') AND completed_at < :cutoff
    ORDER BY completed_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")
_NOTIFICATIONS = _family(NOTIFICATIONS, _NOTIFICATION_BATCH, "record_id", NOTIFICATION_ATTEMPTS)
# Messages the connector could never process, once published to their dead-letter topic.
_UNPROCESSABLE = text("""
    DELETE FROM sync.unprocessable_messages WHERE id IN (
        SELECT id FROM sync.unprocessable_messages
        WHERE created_at < :cutoff AND published_at IS NOT NULL
        ORDER BY created_at LIMIT :limit
        FOR UPDATE SKIP LOCKED)
""")
# The admin audit refuses deletes unless this transaction says it is the retention prune.
_ALLOW_AUDIT_PRUNE = text("SELECT set_config('sync.retention_prune', 'on', true)")
_ADMIN_ACTIONS = text("""
    DELETE FROM sync.admin_actions WHERE id IN (
        SELECT id FROM sync.admin_actions WHERE created_at < :cutoff ORDER BY created_at LIMIT :limit
        FOR UPDATE SKIP LOCKED)
""")
# Admin notification windows that ended and are done (sent, or failed for good), with their occurrences.
_ADMIN_NOTIFICATION_BATCH = text("""
    SELECT id FROM sync.admin_notifications
    WHERE status IN ('sent', 'failed') AND window_end < :cutoff
    ORDER BY window_end LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")
_ADMIN_NOTIFICATIONS = _family(ADMIN_NOTIFICATIONS, _ADMIN_NOTIFICATION_BATCH, "notification_id", ADMIN_OCCURRENCES)
_MAINTENANCE_RUNS = text("""
    DELETE FROM sync.maintenance_runs WHERE id IN (
        SELECT id FROM sync.maintenance_runs WHERE finished_at < :cutoff ORDER BY id LIMIT :limit)
""")
_RECORD_RUN = text("""
    INSERT INTO sync.maintenance_runs (task, started_at, cutoff, pruned, statements, largest_statement)
    VALUES (:task, :started_at, :cutoff, CAST(:pruned AS jsonb), :statements, :largest_statement)
""")


class PruneReport(msgspec.Struct, frozen=True, rename="camel"):
    """What one run removed: rows per table, how many delete statements, the largest one's rows."""

    started_at: datetime
    cutoff: datetime
    pruned: dict[str, int]
    statements: int
    largest_statement: int
    duration_s: float


class RetentionMetrics(MetricSet):
    pruned = counter("sync_retention_pruned_rows", "Rows removed by the retention prune, by table", ["table"])
    statement_rows = histogram(
        "sync_retention_statement_rows",
        "Rows removed by one delete statement of the retention prune (bounded by the batch size)",
        ["table"],
        buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
    )


class _Tally:
    def __init__(self, metrics: RetentionMetrics | None, progress: Progress) -> None:
        self.pruned = dict.fromkeys(TABLES, 0)
        self.statements = 0
        self.largest = 0
        self._metrics = metrics
        self._progress = progress

    def add(self, table: str, rows: int) -> int:
        self._progress(rows)
        self.pruned[table] += rows
        self.statements += 1
        self.largest = max(self.largest, rows)
        if self._metrics is not None:
            self._metrics.pruned.labels(table).inc(rows)
            self._metrics.statement_rows.labels(table).observe(rows)
        return rows


class RetentionPrune:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        older_than_s: float,
        batch_size: int,
        metrics: RetentionMetrics | None = None,
        progress: Progress = no_progress,
    ) -> None:
        self._engine = engine
        self._older_than_s = older_than_s
        self._limit = batch_size
        self._metrics = metrics
        self._progress = progress  # rows removed, statement by statement (the CLI draws it on a terminal)

    async def run(self) -> PruneReport:
        """Prune everything older than the retention; one log line and one ``maintenance_runs`` row."""
        began = time.monotonic()
        tally = _Tally(self._metrics, self._progress)
        async with self._engine.connect() as connection:
            times = await connection.execute(_NOW_AND_CUTOFF, {"older_than_s": self._older_than_s})
            started_at, cutoff = times.one()
        await self._batches(lambda c: self._family_batch(c, _RECORDS, cutoff, tally))
        await self._batches(lambda c: self._family_batch(c, _NOTIFICATIONS, cutoff, tally))
        await self._batches(lambda c: self._simple(c, _UNPROCESSABLE, UNPROCESSABLE, cutoff, tally))
        await self._batches(lambda c: self._admin_batch(c, cutoff, tally))
        await self._batches(lambda c: self._family_batch(c, _ADMIN_NOTIFICATIONS, cutoff, tally))
        await self._batches(lambda c: self._simple(c, _MAINTENANCE_RUNS, MAINTENANCE_RUNS, cutoff, tally))
        # Without a connector running, the status deltas are folded here (the table stays small).
        await self._batches(lambda c: status_counts.fold(c, self._limit))
        report = PruneReport(
            started_at=started_at,
            cutoff=cutoff,
            pruned=tally.pruned,
            statements=tally.statements,
            largest_statement=tally.largest,
            duration_s=round(time.monotonic() - began, 3),
        )
        async with self._engine.begin() as connection:
            await connection.execute(
                _RECORD_RUN,
                {
                    "task": TASK,
                    "started_at": started_at,
                    "cutoff": cutoff,
                    "pruned": msgspec.json.encode(tally.pruned).decode(),
                    "statements": tally.statements,
                    "largest_statement": tally.largest,
                },
            )
        log.info(
            "retention_pruned",
            cutoff=cutoff.isoformat(),
            pruned=tally.pruned,
            statements=tally.statements,
            largest_statement=tally.largest,
            duration_s=report.duration_s,
        )
        return report

    async def _batches(self, batch: Callable[[AsyncConnection], Awaitable[int]]) -> None:
        """Run ``batch`` in a transaction of its own until it finds less than a full batch."""
        while True:
            async with self._engine.begin() as connection:
                done = await batch(connection)
            if done < self._limit:
                return

    async def _family_batch(self, connection: AsyncConnection, family: _Family, cutoff: datetime, tally: _Tally) -> int:
        ids = await self._lock(connection, family.batch, cutoff)
        if ids:
            for child, statement in family.children:
                await self._drain(connection, statement, ids, child, tally)
            tally.add(family.table, (await connection.execute(family.rows, {"ids": ids})).rowcount)
        return len(ids)

    async def _admin_batch(self, connection: AsyncConnection, cutoff: datetime, tally: _Tally) -> int:
        await connection.execute(_ALLOW_AUDIT_PRUNE)
        return await self._simple(connection, _ADMIN_ACTIONS, ADMIN_ACTIONS, cutoff, tally)

    async def _simple(
        self, connection: AsyncConnection, statement: TextClause, table: str, cutoff: datetime, tally: _Tally
    ) -> int:
        result = await connection.execute(statement, {"cutoff": cutoff, "limit": self._limit})
        return tally.add(table, result.rowcount)

    async def _lock(self, connection: AsyncConnection, statement: TextClause, cutoff: datetime) -> list[int]:
        result = await connection.execute(statement, {"cutoff": cutoff, "limit": self._limit})
        return list(result.scalars())

    async def _drain(
        self, connection: AsyncConnection, statement: TextClause, ids: Sequence[int], table: str, tally: _Tally
    ) -> None:
        """Delete the batch's child rows, at most ``batch_size`` per statement."""
        deleted = self._limit
        while deleted >= self._limit:
            deleted = tally.add(
                table, (await connection.execute(statement, {"ids": ids, "limit": self._limit})).rowcount
            )

"""The operators' view of the current state (seed 000 8.1), refreshed from the database in every instance.

* ``external_sync_status{system_code,status}``: records in each status now (the status counts kept
  by triggers, see ``status_counts``; never a scan of the history);
* ``sync_oldest_undelivered_age_seconds{system_code}``: age of the oldest pending or retrying record
  (0 when none);
* ``sync_records_near_deadline{system_code}``: open records within ``near_deadline_window_s`` of their
  delivery deadline (``deliver_by``), or past it;
* ``sync_retention_last_run_timestamp_seconds`` and ``sync_retention_last_run_pruned_rows{table}``:
  the latest maintenance run (the CronJob's process is gone before a scrape, its row is not).

Every instance exports the same database-wide values: aggregate with ``max``, not ``sum``. Each
refresh first folds the pending status deltas (bounded; instances skip each other's rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.logging import get_logger
from libs.kit.metrics import MetricSet, counter, gauge
from services.sync_connector import status_counts
from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.retention import TASK as RETENTION_TASK
from services.sync_connector.waiting import wait_until_set

log = get_logger(__name__)

_LAST_RUN = text("""
    SELECT extract(epoch FROM finished_at) AS finished, pruned FROM sync.maintenance_runs
    WHERE task = :task ORDER BY id DESC LIMIT 1
""")


class StatusGauges(MetricSet):
    status = gauge(
        "external_sync_status",
        "Sync records in each status now, per external system (seed 000 8.1)",
        ["system_code", "status"],
    )
    oldest_age = gauge(
        "sync_oldest_undelivered_age_seconds",
        "Age of the oldest pending or retrying record per external system (0 when none)",
        ["system_code"],
    )
    near_deadline = gauge(
        "sync_records_near_deadline",
        "Open records within the near-deadline window of their delivery deadline, or past it",
        ["system_code"],
    )
    retention_last_run = gauge(
        "sync_retention_last_run_timestamp_seconds",
        "When the latest retention prune finished (unix time; 0 before the first)",
    )
    retention_last_pruned = gauge(
        "sync_retention_last_run_pruned_rows", "Rows the latest retention prune removed, by table", ["table"]
    )
    refresh_errors = counter(
        "sync_status_refresh_errors",
        "Failed refreshes of the status gauges (database errors); the next refresh tries again",
    )


class StatusRefresher:
    """Refreshes ``StatusGauges`` every ``interval_s``; ``refresh`` once on demand (tests)."""

    def __init__(
        self,
        engine: AsyncEngine,
        gauges: StatusGauges,
        *,
        system_codes: Sequence[str],
        near_window_s: float,
        interval_s: float,
    ) -> None:
        self._engine = engine
        self._gauges = gauges
        self._codes = list(system_codes)
        self._window_s = near_window_s
        self._interval_s = interval_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="status-gauges")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def refresh(self) -> None:
        async with self._engine.begin() as connection:
            await status_counts.fold(connection)
        async with self._engine.connect() as connection:
            counts = await status_counts.status_counts(connection, self._codes)
            open_records = await status_counts.open_records(connection, self._codes, self._window_s)
            last_run = (await connection.execute(_LAST_RUN, {"task": RETENTION_TASK})).first()
        for code, by_status in counts.items():
            for status, n in by_status.items():
                self._gauges.status.labels(code, status).set(n)
        for code, found in open_records.items():
            self._gauges.oldest_age.labels(code).set(found.oldest_age_s)
            self._gauges.near_deadline.labels(code).set(found.near_deadline)
        if last_run is not None:
            self._gauges.retention_last_run.set(float(last_run.finished))
            pruned = last_run.pruned if isinstance(last_run.pruned, dict) else msgspec.json.decode(last_run.pruned)
            for table, rows in pruned.items():
                self._gauges.retention_last_pruned.labels(table).set(rows)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.refresh()
            except DATABASE_FAULTS as exc:
                self._gauges.refresh_errors.inc()
                log.warning("status_gauges_refresh_failed", error=repr(exc))
            await wait_until_set(self._stop, self._interval_s)

"""The delivery state of (event, system) records, their lanes and attempts (SQL on one connection).

Lock order: lane rows first (in customer order), then records of those lanes (the fast
path and the settling of calls' results). The retry scheduler is the exception: it
locks due records first (SKIP LOCKED), but then takes their lanes with SKIP
LOCKED too, so it never waits while holding anything and no cycle can form.
Admin re-drives lock records only and never wait while holding a lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db import UnitOfWork
from services.sync_connector import record_sql as sql
from services.sync_connector.attempts import CallResult
from services.sync_connector.lanes import Blocker, LaneState, RecordState
from services.sync_connector.outcome import SyncStatus
from services.sync_connector.sinks import ExternalSystem


class SyncRecord(msgspec.Struct, frozen=True):
    """A record as delivery sees it."""

    id: int
    event_id: str
    customer_id: str
    system_code: str
    status: SyncStatus
    profile_version: int
    retry_count: int
    max_retry_count: int
    next_attempt_at: datetime | None
    due: bool
    sync_data: str
    event_headers: dict[str, str]

    @property
    def state(self) -> RecordState:
        return RecordState(self.id, self.status, self.profile_version, self.due)


class NewRecord(msgspec.Struct, frozen=True):
    """What a Kafka message says about one (event, system) record."""

    event_id: str
    customer_id: str
    application_id: str
    profile_version: int
    sync_data: bytes
    event_headers: dict[str, str]


class Settlement(msgspec.Struct, frozen=True):
    """A call's result to write for a record whose claim (``token``) is still to be shown."""

    record: SyncRecord
    token: str
    result: CallResult


class SyncRecordRepository:
    """Reads and writes records of one system; every method takes a batch (one round trip each)."""

    def __init__(self, connection: AsyncConnection, system_code: str) -> None:
        self._connection = connection
        self._system_code = system_code

    async def _run(self, statement: Any, **params: Any) -> Any:
        return await self._connection.execute(statement, {"system_code": self._system_code, **params})

    async def open(self, system: ExternalSystem, new: Sequence[NewRecord], max_retry_count: int) -> list[SyncRecord]:
        """The records, created ``pending`` on first sight, locked until commit (one per event, any order).

        The events must be distinct (the same event twice in one statement is refused by PostgreSQL).
        """
        result = await self._run(
            sql.OPEN,
            system_name=system.name,
            max_retry_count=max_retry_count,
            event_ids=[n.event_id for n in new],
            customer_ids=[n.customer_id for n in new],
            application_ids=[n.application_id for n in new],
            sync_data=[n.sync_data.decode() for n in new],
            versions=[n.profile_version for n in new],
            event_headers=[msgspec.json.encode(n.event_headers).decode() for n in new],
        )
        return [msgspec.convert(dict(row), SyncRecord) for row in result.mappings()]

    async def due(self, limit: int) -> list[SyncRecord]:
        """Open records whose attempt time has come, locked; rows locked by others are skipped."""
        result = await self._run(sql.DUE, limit=limit)
        return [msgspec.convert(dict(row), SyncRecord) for row in result.mappings()]

    async def lock_lanes(self, customer_ids: Collection[str]) -> dict[str, LaneState]:
        """The lanes, created on first use, locked until commit (waits for concurrent holders)."""
        result = await self._run(sql.LOCK_LANES, customer_ids=sorted(set(customer_ids)))
        return {row["customer_id"]: msgspec.convert(dict(row), LaneState) for row in result.mappings()}

    async def try_lock_lane(self, customer_id: str) -> LaneState | None:
        """The lane locked until commit, or None when another transaction holds it right now."""
        await self._run(sql.ENSURE_LANE, customer_id=customer_id)
        row = (await self._run(sql.TRY_LOCK_LANE, customer_id=customer_id)).mappings().first()
        return None if row is None else msgspec.convert(dict(row), LaneState)

    async def blockers(self, records: Sequence[SyncRecord]) -> dict[int, Blocker]:
        """Per record id: the oldest other open record of its lane, ahead of it (absent when none)."""
        if not records:
            return {}
        result = await self._run(
            sql.BLOCKERS,
            ids=[r.id for r in records],
            customer_ids=[r.customer_id for r in records],
            versions=[r.profile_version for r in records],
        )
        return {row["record_id"]: msgspec.convert(dict(row), Blocker) for row in result.mappings()}

    async def claim(self, record_ids: Sequence[int], lease_s: float) -> list[str]:
        """Take the records and their lanes (one record per lane) for one call each; returns the fencing
        tokens the results must show, in order."""
        tokens = [str(uuid.uuid4()) for _ in record_ids]
        if record_ids:
            await self._run(sql.CLAIM, ids=list(record_ids), tokens=tokens, lease_s=lease_s)
        return tokens

    async def defer(
        self,
        record_id: int,
        *,
        status: SyncStatus,
        delay_s: float,
        not_before: datetime | None = None,
        blocked_by: int | None = None,
    ) -> None:
        """No call now: the next attempt is at ``max(not_before, now + delay_s)``."""
        await self._run(
            sql.DEFER, id=record_id, status=status.value, delay_s=delay_s, not_before=not_before, blocked_by=blocked_by
        )

    async def supersede(self, record: SyncRecord, detail: str) -> None:
        await self._finish([(record.id, SyncStatus.SUPERSEDED, None, detail)])
        await self._release_lanes([record])

    async def settle(self, outcomes: Sequence[Settlement]) -> list[Settlement]:
        """Write the results of calls whose claims still hold, and free their lanes; returns those.

        Lanes are locked first (in order), so a decision about a lane never sees half a result.
        """
        if not outcomes:
            return []
        await self._run(sql.LOCK_LANES_OF, customer_ids=sorted({o.record.customer_id for o in outcomes}))
        held = await self._run(
            sql.RELEASE_CLAIMS, ids=[o.record.id for o in outcomes], tokens=[o.token for o in outcomes]
        )
        still_held = {row[0] for row in held}
        kept = [o for o in outcomes if o.record.id in still_held]
        if not kept:
            return []
        await self._run(
            sql.ATTEMPTS,
            ids=[o.record.id for o in kept],
            outcomes=[o.result.classification.outcome.value for o in kept],
            http_statuses=[o.result.http_status for o in kept],
            errors=[o.result.error for o in kept],
            durations_ms=[o.result.duration_s * 1000 for o in kept],
        )
        retrying = [o for o in kept if o.result.status is SyncStatus.RETRYING]
        if retrying:
            await self._run(
                sql.RETRYING,
                ids=[o.record.id for o in retrying],
                retry_counts=[o.record.retry_count + 1 for o in retrying],
                http_statuses=[o.result.http_status for o in retrying],
                errors=[o.result.classification.detail for o in retrying],
                delays_s=[o.result.delay_s for o in retrying],
            )
        await self._finish(
            [
                (o.record.id, o.result.status, o.result.http_status, o.result.error)
                for o in kept
                if o.result.status is not SyncStatus.RETRYING
            ]
        )
        await self._record_applied([o.record for o in kept if o.result.status is SyncStatus.SUCCESS])
        for o in kept:
            if o.result.status is SyncStatus.FAILED:
                await self._run(
                    sql.DEAD_LETTER,
                    id=o.record.id,
                    reason=o.result.dead_letter_reason,
                    error=o.result.error,
                    http_status=o.result.http_status,
                )
        await self._release_lanes([o.record for o in kept])
        return kept

    async def _finish(self, rows: Sequence[tuple[int, SyncStatus, int | None, str | None]]) -> None:
        """Terminal statuses: success, superseded or failed."""
        if rows:
            ids, statuses, http_statuses, errors = zip(*rows, strict=True)
            await self._run(
                sql.FINISH,
                ids=list(ids),
                statuses=[s.value for s in statuses],
                http_statuses=list(http_statuses),
                errors=list(errors),
            )

    async def _record_applied(self, records: Sequence[SyncRecord]) -> None:
        """Each system now holds at least these versions (never lowered); the newest per customer counts."""
        newest: dict[str, SyncRecord] = {}
        for record in records:
            if (seen := newest.get(record.customer_id)) is None or record.profile_version > seen.profile_version:
                newest[record.customer_id] = record
        if newest:
            await self._run(
                sql.APPLIED,
                customer_ids=list(newest),
                versions=[r.profile_version for r in newest.values()],
                event_ids=[r.event_id for r in newest.values()],
            )

    async def _release_lanes(self, records: Sequence[SyncRecord]) -> None:
        """Free the lanes these records hold, and wake the records waiting behind them."""
        params = {"customer_ids": [r.customer_id for r in records], "ids": [r.id for r in records]}
        await self._run(sql.RELEASE_LANES, **params)
        await self._run(sql.WAKE_WAITING, **params)


class SyncUnitOfWork(UnitOfWork):
    """One transaction over the records of one system."""

    records: SyncRecordRepository

    def __init__(self, engine: AsyncEngine, system_code: str) -> None:
        super().__init__(engine)
        self._system_code = system_code

    def _bind(self, connection: AsyncConnection) -> None:
        self.records = SyncRecordRepository(connection, self._system_code)

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
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import Expired, Settlement
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
    max_retry_count: int | None  # the optional count cap; None: retried until its deadline
    next_attempt_at: datetime | None
    deliver_by: datetime | None  # None: a full deadline from its next attempt (an admin re-drove it)
    due: bool
    sync_data: str
    event_headers: dict[str, str]

    @property
    def state(self) -> RecordState:
        return RecordState(self.id, self.status, self.profile_version, self.due)

    @property
    def tries_spent(self) -> int:
        return self.retry_count

    @property
    def max_tries(self) -> int | None:
        return self.max_retry_count


class NewRecord(msgspec.Struct, frozen=True):
    """What a Kafka message says about one (event, system) record."""

    event_id: str
    customer_id: str
    application_id: str
    profile_version: int
    sync_data: bytes
    event_headers: dict[str, str]


SyncSettlement = Settlement[SyncRecord]


class SyncRecordRepository:
    """Reads and writes records of one system; every method takes a batch (one round trip each)."""

    def __init__(self, connection: AsyncConnection, system_code: str, clock: Clock) -> None:
        self._connection = connection
        self._system_code = system_code
        self._clock = clock

    async def _run(self, statement: Any, **params: Any) -> Any:
        return await self._connection.execute(
            statement, {"system_code": self._system_code, "now": self._clock.now(), **params}
        )

    async def open(
        self, system: ExternalSystem, new: Sequence[NewRecord], *, max_retry_count: int | None, deadline_s: float
    ) -> list[tuple[SyncRecord, Blocker | None]]:
        """The records, created ``pending`` on first sight (to be delivered within ``deadline_s`` from now),
        locked until commit (one per event, any order), each with the oldest other open record of its lane
        ahead of it (None: nothing ahead, or finished).

        At most one record per lane (and so per event: PostgreSQL refuses one row twice in a statement).
        """
        result = await self._run(
            sql.OPEN,
            system_name=system.name,
            max_retry_count=max_retry_count,
            deadline_s=deadline_s,
            event_ids=[n.event_id for n in new],
            customer_ids=[n.customer_id for n in new],
            application_ids=[n.application_id for n in new],
            sync_data=[n.sync_data.decode() for n in new],
            versions=[n.profile_version for n in new],
            event_headers=[msgspec.json.encode(n.event_headers).decode() for n in new],
        )
        opened: list[tuple[SyncRecord, Blocker | None]] = []
        for row in result.mappings():
            blocker = (
                None
                if row["blocker_id"] is None
                else Blocker(row["blocker_id"], row["blocker_version"], row["blocker_next_attempt_at"])
            )
            opened.append((msgspec.convert(dict(row), SyncRecord), blocker))
        return opened

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

    async def settle(self, settlements: Sequence[SyncSettlement]) -> list[SyncSettlement]:
        """Write the results of calls whose claims still hold, and free their lanes; returns those.

        At most one settlement per lane (a claim holds its lane). Lanes are locked first (in order), so a
        decision about a lane never sees half a result.
        """
        if not settlements:
            return []
        await self._run(sql.LOCK_LANES_OF, customer_ids=sorted({s.record.customer_id for s in settlements}))
        results = [s.result for s in settlements]
        settled = await self._run(
            sql.SETTLE,
            ids=[s.record.id for s in settlements],
            tokens=[s.token for s in settlements],
            statuses=[r.status.value for r in results],
            outcomes=[r.classification.outcome.value for r in results],
            http_statuses=[r.http_status for r in results],
            errors=[r.error for r in results],
            delays_s=[r.delay_s for r in results],
            durations_ms=[r.duration_s * 1000 for r in results],
            counted=[r.counted for r in results],
            deliver_by=[r.deliver_by for r in results],
        )
        still_held = {row[0] for row in settled}
        kept = [s for s in settlements if s.record.id in still_held]
        for s in kept:
            if s.result.status is SyncStatus.FAILED:
                await self._run(
                    sql.DEAD_LETTER,
                    id=s.record.id,
                    reason=s.result.dead_letter_reason,
                    error=s.result.error,
                    http_status=s.result.http_status,
                )
        return kept

    async def expire(self, detail: str, limit: int) -> list[Expired]:
        """Fail up to ``limit`` open records whose deadline has passed and that nobody is calling for
        (dead letters of reason ``deadline``); returns them."""
        result = await self._run(sql.EXPIRE, detail=detail, limit=limit)
        return [msgspec.convert(dict(row), Expired) for row in result.mappings()]

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

    async def _release_lanes(self, records: Sequence[SyncRecord]) -> None:
        """Free the lanes these records hold, and wake the records waiting behind them."""
        params = {"customer_ids": [r.customer_id for r in records], "ids": [r.id for r in records]}
        await self._run(sql.RELEASE_LANES, **params)
        await self._run(sql.WAKE_WAITING, **params)


class SyncUnitOfWork(UnitOfWork):
    """One transaction over the records of one system."""

    records: SyncRecordRepository

    def __init__(self, engine: AsyncEngine, system_code: str, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(engine)
        self._system_code = system_code
        self._clock = clock

    def _bind(self, connection: AsyncConnection) -> None:
        self.records = SyncRecordRepository(connection, self._system_code, self._clock)

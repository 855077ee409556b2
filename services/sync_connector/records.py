"""The delivery state of (event, system) records, their lanes and attempts (SQL on one connection).

Lock order: a lane row first, then records of that lane (the fast path and
the settling of a call's result). The retry scheduler is the exception: it
locks due records first (SKIP LOCKED), but then takes their lanes with SKIP
LOCKED too, so it never waits while holding anything and no cycle can form.
Admin re-drives lock records only and never wait while holding a lock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.kit.db import UnitOfWork
from services.sync_connector.lanes import Blocker, LaneState, RecordState
from services.sync_connector.outcome import SyncStatus
from services.sync_connector.sinks import ExternalSystem

_RECORD_COLUMNS = """
    id, event_id::text AS event_id, customer_id, system_code, sync_status AS status, profile_version, retry_count,
    max_retry_count, next_attempt_at, COALESCE(next_attempt_at <= now(), true) AS due,
    sync_data::text AS sync_data, event_headers
"""


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


_OPEN = text(f"""
    INSERT INTO sync.external_sync_records
        (event_id, customer_id, application_id, system_code, system_name, sync_data, max_retry_count,
         profile_version, event_headers)
    VALUES (:event_id, :customer_id, :application_id, :system_code, :system_name, CAST(:sync_data AS jsonb),
            :max_retry_count, :profile_version, CAST(:event_headers AS jsonb))
    -- A no-op update so RETURNING also yields (and locks) the existing row on redelivery.
    ON CONFLICT (event_id, system_code) DO UPDATE SET event_id = EXCLUDED.event_id
    RETURNING {_RECORD_COLUMNS}
""")  # noqa: S608 - fixed column lists, values are bound parameters
_DUE = text(f"""
    SELECT {_RECORD_COLUMNS} FROM sync.external_sync_records
    WHERE system_code = :system_code AND sync_status IN ('pending', 'retrying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608 - fixed column lists, values are bound parameters
_LANE_COLUMNS = """
    applied_version, inflight_record_id, inflight_until, COALESCE(inflight_until > now(), false) AS inflight_live
"""
_LOCK_LANE = text(f"""
    INSERT INTO sync.customer_sync_state (system_code, customer_id) VALUES (:system_code, :customer_id)
    ON CONFLICT (system_code, customer_id) DO UPDATE SET updated_at = now()
    RETURNING {_LANE_COLUMNS}
""")  # noqa: S608 - fixed column lists, values are bound parameters
_ENSURE_LANE = text("""
    INSERT INTO sync.customer_sync_state (system_code, customer_id) VALUES (:system_code, :customer_id)
    ON CONFLICT (system_code, customer_id) DO NOTHING
""")
_TRY_LOCK_LANE = text(f"""
    SELECT {_LANE_COLUMNS} FROM sync.customer_sync_state
    WHERE system_code = :system_code AND customer_id = :customer_id
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608 - fixed column lists, values are bound parameters
_BLOCKER = text("""
    SELECT id, profile_version, next_attempt_at FROM sync.external_sync_records
    WHERE system_code = :system_code AND customer_id = :customer_id AND sync_status IN ('pending', 'retrying')
      AND (profile_version, id) < (:profile_version, :id)
    ORDER BY profile_version, id
    LIMIT 1
""")
_CLAIM = text("""
    WITH claimed AS (
        UPDATE sync.external_sync_records
        SET claim_token = :token, next_attempt_at = now() + make_interval(secs => :lease_s),
            blocked_by_record_id = NULL, updated_at = now()
        WHERE id = :id
        RETURNING system_code, customer_id, next_attempt_at
    )
    UPDATE sync.customer_sync_state s
    SET inflight_record_id = :id, inflight_until = claimed.next_attempt_at
    FROM claimed WHERE s.system_code = claimed.system_code AND s.customer_id = claimed.customer_id
""")
_DEFER = text("""
    UPDATE sync.external_sync_records
    SET sync_status = :status, blocked_by_record_id = :blocked_by, updated_at = now(),
        next_attempt_at = GREATEST(CAST(:not_before AS timestamptz), now() + make_interval(secs => :delay_s))
    WHERE id = :id
""")
_RELEASE_CLAIM = text("""
    UPDATE sync.external_sync_records SET claim_token = NULL WHERE id = :id AND claim_token = :token RETURNING id
""")
_LOCK_LANE_FOR_RECORD = text("""
    SELECT 1 FROM sync.customer_sync_state
    WHERE system_code = :system_code AND customer_id = :customer_id FOR UPDATE
""")
_FINISH = text("""
    UPDATE sync.external_sync_records
    SET sync_status = :status, last_http_status = COALESCE(:http_status, last_http_status),
        error_message = :error, next_attempt_at = NULL, claim_token = NULL, blocked_by_record_id = NULL,
        updated_at = now(), completed_at = now()
    WHERE id = :id
""")
_RETRYING = text("""
    UPDATE sync.external_sync_records
    SET sync_status = 'retrying', retry_count = :retry_count, last_http_status = :http_status,
        error_message = :error, next_attempt_at = now() + make_interval(secs => :delay_s), updated_at = now()
    WHERE id = :id
""")
_ATTEMPT = text("""
    INSERT INTO sync.external_sync_attempts (record_id, attempt_no, outcome, http_status, error_message, duration_ms)
    SELECT :record_id, COALESCE(MAX(attempt_no), 0) + 1, :outcome, :http_status, :error, :duration_ms
    FROM sync.external_sync_attempts WHERE record_id = :record_id
""")
_RELEASE_LANE = text("""
    UPDATE sync.customer_sync_state
    SET inflight_record_id = NULL, inflight_until = NULL, updated_at = now()
    WHERE system_code = :system_code AND customer_id = :customer_id AND inflight_record_id = :id
""")
# SKIP LOCKED: a waiter locked right now is being looked at by a retry scheduler anyway (it was due);
# waiting for it could deadlock two schedulers that each hold a lane.
_WAKE_WAITING = text("""
    UPDATE sync.external_sync_records SET next_attempt_at = now()
    WHERE id IN (
        SELECT id FROM sync.external_sync_records
        WHERE system_code = :system_code AND customer_id = :customer_id AND blocked_by_record_id = :id
          AND sync_status IN ('pending', 'retrying')
        FOR UPDATE SKIP LOCKED
    )
""")
_APPLIED = text("""
    UPDATE sync.customer_sync_state
    SET applied_event_id = CASE WHEN applied_version IS NULL OR :version > applied_version
                                THEN CAST(:event_id AS uuid) ELSE applied_event_id END,
        applied_version = GREATEST(COALESCE(applied_version, :version), :version),
        updated_at = now()
    WHERE system_code = :system_code AND customer_id = :customer_id
""")
_DEAD_LETTER = text("""
    INSERT INTO sync.dead_letters
        (record_id, event_id, system_code, customer_id, profile_version, reason, payload, headers,
         last_error, last_http_status, attempts)
    SELECT r.id, r.event_id, r.system_code, r.customer_id, r.profile_version, :reason, r.sync_data, r.event_headers,
           :error, :http_status, (SELECT count(*) FROM sync.external_sync_attempts a WHERE a.record_id = r.id)
    FROM sync.external_sync_records r WHERE r.id = :id
    RETURNING id
""")


class SyncRecordRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def _run(self, statement: Any, **params: Any) -> Any:
        return await self._connection.execute(statement, params)

    async def open(
        self,
        *,
        event_id: str,
        customer_id: str,
        application_id: str,
        profile_version: int,
        system: ExternalSystem,
        sync_data: bytes,
        event_headers: dict[str, str],
        max_retry_count: int,
    ) -> SyncRecord:
        """The record of (event, system), created ``pending`` on first sight; locked until commit."""
        result = await self._run(
            _OPEN,
            event_id=event_id,
            customer_id=customer_id,
            application_id=application_id,
            system_code=system.code,
            system_name=system.name,
            sync_data=sync_data.decode(),
            event_headers=msgspec.json.encode(event_headers).decode(),
            max_retry_count=max_retry_count,
            profile_version=profile_version,
        )
        return msgspec.convert(dict(result.mappings().one()), SyncRecord)

    async def due(self, system_code: str, limit: int) -> list[SyncRecord]:
        """Open records whose attempt time has come, locked; rows locked by others are skipped."""
        result = await self._run(_DUE, system_code=system_code, limit=limit)
        return [msgspec.convert(dict(row), SyncRecord) for row in result.mappings()]

    async def lock_lane(self, system_code: str, customer_id: str) -> LaneState:
        """The lane, created on first use, locked until commit (waits for a concurrent holder)."""
        row = (await self._run(_LOCK_LANE, system_code=system_code, customer_id=customer_id)).mappings().one()
        return msgspec.convert(dict(row), LaneState)

    async def try_lock_lane(self, system_code: str, customer_id: str) -> LaneState | None:
        """The lane locked until commit, or None when another transaction holds it right now."""
        await self._run(_ENSURE_LANE, system_code=system_code, customer_id=customer_id)
        row = (await self._run(_TRY_LOCK_LANE, system_code=system_code, customer_id=customer_id)).mappings().first()
        return None if row is None else msgspec.convert(dict(row), LaneState)

    async def blocker(self, record: SyncRecord) -> Blocker | None:
        result = await self._run(
            _BLOCKER,
            system_code=record.system_code,
            customer_id=record.customer_id,
            profile_version=record.profile_version,
            id=record.id,
        )
        row = result.mappings().first()
        return None if row is None else msgspec.convert(dict(row), Blocker)

    async def claim(self, record_id: int, lease_s: float) -> str:
        """Take the record and its lane for one call; returns the fencing token the result must show."""
        token = str(uuid.uuid4())
        await self._run(_CLAIM, id=record_id, token=token, lease_s=lease_s)
        return token

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
            _DEFER, id=record_id, status=status.value, delay_s=delay_s, not_before=not_before, blocked_by=blocked_by
        )

    async def release_claim(self, record_id: int, token: str) -> bool:
        """False when the claim was lost (its lease ended and someone else took the record)."""
        return (await self._run(_RELEASE_CLAIM, id=record_id, token=token)).first() is not None

    async def lock_lane_of(self, record: SyncRecord) -> None:
        await self._run(_LOCK_LANE_FOR_RECORD, system_code=record.system_code, customer_id=record.customer_id)

    async def add_attempt(
        self, record_id: int, *, outcome: str, http_status: int | None, error: str | None, duration_ms: float
    ) -> None:
        """Numbered after the record's previous attempts, also across redeliveries and re-drives."""
        await self._run(
            _ATTEMPT,
            record_id=record_id,
            outcome=outcome,
            http_status=http_status,
            error=error,
            duration_ms=duration_ms,
        )

    async def finish(self, record_id: int, status: SyncStatus, http_status: int | None, error: str | None) -> None:
        """A terminal status: success, superseded or failed."""
        await self._run(_FINISH, id=record_id, status=status.value, http_status=http_status, error=error)

    async def schedule_retry(
        self, record_id: int, *, retry_count: int, delay_s: float, http_status: int | None, error: str
    ) -> None:
        await self._run(
            _RETRYING, id=record_id, retry_count=retry_count, delay_s=delay_s, http_status=http_status, error=error
        )

    async def release_lane(self, record: SyncRecord) -> None:
        """Free the lane if this record holds it, and wake the records waiting behind it."""
        params = {"system_code": record.system_code, "customer_id": record.customer_id, "id": record.id}
        await self._run(_RELEASE_LANE, **params)
        await self._run(_WAKE_WAITING, **params)

    async def record_applied(self, record: SyncRecord) -> None:
        """The system now holds at least this record's version of the customer (never lowers it)."""
        await self._run(
            _APPLIED,
            system_code=record.system_code,
            customer_id=record.customer_id,
            version=record.profile_version,
            event_id=record.event_id,
        )

    async def add_dead_letter(self, record_id: int, *, reason: str, error: str | None, http_status: int | None) -> int:
        result = await self._run(_DEAD_LETTER, id=record_id, reason=reason, error=error, http_status=http_status)
        dead_letter_id: int = result.scalar_one()
        return dead_letter_id


class SyncUnitOfWork(UnitOfWork):
    records: SyncRecordRepository

    def _bind(self, connection: AsyncConnection) -> None:
        self.records = SyncRecordRepository(connection)

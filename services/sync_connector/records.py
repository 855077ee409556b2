"""``sync.external_sync_records``, its attempts and ``customer_sync_state`` (SQL on one connection)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.kit.db import UnitOfWork
from services.sync_connector.outcome import SyncStatus
from services.sync_connector.sinks import ExternalSystem


class RecordState(msgspec.Struct, frozen=True):
    id: int
    status: SyncStatus
    retry_count: int
    next_attempt_at: datetime | None


class SyncRecordView(msgspec.Struct, frozen=True, rename="camel"):
    """One record as the HTTP API shows it."""

    id: int
    event_id: str
    customer_id: str
    application_id: str
    system_code: str
    system_name: str
    sync_status: str
    retry_count: int
    max_retry_count: int
    profile_version: int
    last_http_status: int | None
    error_message: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    sync_data: Any


_OPEN = text("""
    INSERT INTO sync.external_sync_records
        (event_id, customer_id, application_id, system_code, system_name, sync_data, max_retry_count, profile_version)
    VALUES (:event_id, :customer_id, :application_id, :system_code, :system_name, CAST(:sync_data AS jsonb),
            :max_retry_count, :profile_version)
    -- A no-op update so RETURNING also yields the existing row on redelivery.
    ON CONFLICT (event_id, system_code) DO UPDATE SET event_id = EXCLUDED.event_id
    RETURNING id, sync_status, retry_count, next_attempt_at
""")
_APPLIED_VERSION = text("""
    SELECT applied_version FROM sync.customer_sync_state
    WHERE system_code = :system_code AND customer_id = :customer_id
""")
_FINISH = text("""
    UPDATE sync.external_sync_records
    SET sync_status = :status, last_http_status = COALESCE(:http_status, last_http_status),
        error_message = :error, next_attempt_at = NULL, updated_at = now(), completed_at = now()
    WHERE id = :id
""")
_RETRYING = text("""
    UPDATE sync.external_sync_records
    SET sync_status = 'retrying', retry_count = :retry_count, last_http_status = :http_status,
        error_message = :error, next_attempt_at = :next_attempt_at, updated_at = now()
    WHERE id = :id
""")
_ATTEMPT = text("""
    INSERT INTO sync.external_sync_attempts (record_id, attempt_no, outcome, http_status, error_message, duration_ms)
    SELECT :record_id, COALESCE(MAX(attempt_no), 0) + 1, :outcome, :http_status, :error, :duration_ms
    FROM sync.external_sync_attempts WHERE record_id = :record_id
""")
_APPLIED = text("""
    INSERT INTO sync.customer_sync_state (system_code, customer_id, applied_version, applied_event_id)
    VALUES (:system_code, :customer_id, :version, :event_id)
    ON CONFLICT (system_code, customer_id) DO UPDATE
    SET applied_version = GREATEST(customer_sync_state.applied_version, EXCLUDED.applied_version),
        applied_event_id = CASE WHEN EXCLUDED.applied_version > customer_sync_state.applied_version
                                THEN EXCLUDED.applied_event_id ELSE customer_sync_state.applied_event_id END,
        updated_at = now()
""")
_LIST = text("""
    SELECT id, event_id::text AS event_id, customer_id, application_id, system_code, system_name, sync_status,
           retry_count, max_retry_count, profile_version, last_http_status, error_message, next_attempt_at,
           created_at, updated_at, completed_at, sync_data
    FROM sync.external_sync_records WHERE customer_id = :customer_id
    ORDER BY created_at, id LIMIT :limit
""")


class SyncRecordRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def open(
        self,
        *,
        event_id: str,
        customer_id: str,
        application_id: str,
        profile_version: int,
        system: ExternalSystem,
        sync_data: bytes,
        max_retry_count: int,
    ) -> RecordState:
        """The record of (event, system), created ``pending`` on first sight."""
        row = (
            await self._connection.execute(
                _OPEN,
                {
                    "event_id": event_id,
                    "customer_id": customer_id,
                    "application_id": application_id,
                    "system_code": system.code,
                    "system_name": system.name,
                    "sync_data": sync_data.decode(),
                    "max_retry_count": max_retry_count,
                    "profile_version": profile_version,
                },
            )
        ).one()
        return RecordState(row.id, SyncStatus(row.sync_status), row.retry_count, row.next_attempt_at)

    async def applied_version(self, system_code: str, customer_id: str) -> int | None:
        result = await self._connection.execute(
            _APPLIED_VERSION, {"system_code": system_code, "customer_id": customer_id}
        )
        version: int | None = result.scalar_one_or_none()
        return version

    async def add_attempt(
        self,
        record_id: int,
        *,
        outcome: str,
        http_status: int | None,
        error: str | None,
        duration_ms: float,
    ) -> None:
        """Numbered after the record's previous attempts, also across redeliveries."""
        await self._connection.execute(
            _ATTEMPT,
            {
                "record_id": record_id,
                "outcome": outcome,
                "http_status": http_status,
                "error": error,
                "duration_ms": duration_ms,
            },
        )

    async def finish(self, record_id: int, status: SyncStatus, http_status: int | None, error: str | None) -> None:
        """A terminal status: success, superseded or failed."""
        await self._connection.execute(
            _FINISH, {"id": record_id, "status": status.value, "http_status": http_status, "error": error}
        )

    async def schedule_retry(
        self,
        record_id: int,
        *,
        retry_count: int,
        next_attempt_at: datetime,
        http_status: int | None,
        error: str,
    ) -> None:
        await self._connection.execute(
            _RETRYING,
            {
                "id": record_id,
                "retry_count": retry_count,
                "next_attempt_at": next_attempt_at,
                "http_status": http_status,
                "error": error,
            },
        )

    async def record_applied(self, system_code: str, customer_id: str, version: int, event_id: str) -> None:
        """The system now holds at least ``version`` of the customer (never lowers it)."""
        await self._connection.execute(
            _APPLIED,
            {
                "system_code": system_code,
                "customer_id": customer_id,
                "version": version,
                "event_id": event_id,
            },
        )

    async def list_for_customer(self, customer_id: str, limit: int = 500) -> list[SyncRecordView]:
        result = await self._connection.execute(_LIST, {"customer_id": customer_id, "limit": limit})
        return [SyncRecordView(**row) for row in result.mappings()]


class SyncUnitOfWork(UnitOfWork):
    records: SyncRecordRepository

    def _bind(self, connection: AsyncConnection) -> None:
        self.records = SyncRecordRepository(connection)

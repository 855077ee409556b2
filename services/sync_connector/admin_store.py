"""SQL for the admin use cases: record listing, per-customer status, re-drive, the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.kit.db import UnitOfWork


class SyncRecordView(msgspec.Struct, frozen=True, rename="camel"):
    """One record as the admin API and CLI show it."""

    id: int
    event_id: str
    customer_id: str
    application_id: str
    system_code: str
    system_name: str
    sync_status: str
    retry_count: int
    max_retry_count: int | None  # the optional count cap (None: retried until its deadline)
    redrive_count: int
    profile_version: int
    last_http_status: int | None
    error_message: str | None
    next_attempt_at: datetime | None
    blocked_by_record_id: int | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    sync_data: Any


class SystemSyncStatus(msgspec.Struct, frozen=True, rename="camel"):
    """The latest record of one customer at one system (seed ``getSyncStatus``)."""

    system_code: str
    system_name: str
    sync_status: str
    record_id: int
    event_id: str
    profile_version: int
    applied_version: int | None
    retry_count: int
    error_message: str | None
    next_attempt_at: datetime | None
    updated_at: datetime


class RecordFilter(msgspec.Struct, frozen=True):
    customer_id: str | None = None
    system_code: str | None = None
    status: str | None = None
    event_id: str | None = None


class AdminAction(msgspec.Struct, frozen=True):
    actor: str
    ip: str | None
    user_agent: str | None
    channel: str  # http | cli
    action: str
    affected_count: int
    system_code: str | None = None
    record_id: int | None = None
    filter: dict[str, Any] = msgspec.field(default_factory=dict)
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_VIEW_COLUMNS = """
    id, event_id::text AS event_id, customer_id, application_id, system_code, system_name, sync_status,
    retry_count, max_retry_count, redrive_count, profile_version, last_http_status, error_message, next_attempt_at,
    blocked_by_record_id, created_at, updated_at, completed_at, sync_data
"""
# Fixed condition fragments; only their parameters vary.
_CONDITIONS = {
    "customer_id": "customer_id = :customer_id",
    "system_code": "system_code = :system_code",
    "status": "sync_status = :status",
    "event_id": "event_id = CAST(:event_id AS uuid)",
}
_STATUS = text("""
    SELECT DISTINCT ON (r.system_code)
           r.system_code, r.system_name, r.sync_status, r.id AS record_id, r.event_id::text AS event_id,
           r.profile_version, s.applied_version, r.retry_count, r.error_message, r.next_attempt_at, r.updated_at
    FROM sync.external_sync_records r
    LEFT JOIN sync.customer_sync_state s ON s.system_code = r.system_code AND s.customer_id = r.customer_id
    WHERE r.customer_id = :customer_id
    ORDER BY r.system_code, r.profile_version DESC, r.id DESC
""")
_LOCK_RECORD = text(f"SELECT {_VIEW_COLUMNS} FROM sync.external_sync_records WHERE id = :id FOR UPDATE")  # noqa: S608
# A full deadline again (deliver_by NULL: set at its next attempt) and, when a count cap is set, another
# full budget of retries on top of those spent: retry_count keeps counting across re-drives.
_REDRIVE = f"""
    UPDATE sync.external_sync_records
    SET sync_status = 'retrying', next_attempt_at = now(), deliver_by = NULL,
        max_retry_count = retry_count + CAST(:budget AS integer),
        redrive_count = redrive_count + 1, completed_at = NULL, claim_token = NULL, blocked_by_record_id = NULL,
        updated_at = now()
    WHERE id IN ({{ids}})
    RETURNING {_VIEW_COLUMNS}
"""  # noqa: S608 - fixed fragments, values are bound parameters
_REDRIVE_ONE = text(_REDRIVE.format(ids=":id"))
_REDRIVE_FAILED = text(
    _REDRIVE.format(
        ids="""
        SELECT id FROM sync.external_sync_records
        WHERE system_code = :system_code AND sync_status = 'failed'
          AND (CAST(:customer_id AS varchar) IS NULL OR customer_id = :customer_id)
        ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"""
    )
)
_AUDIT = text("""
    INSERT INTO sync.admin_actions
        (actor, ip, user_agent, channel, action, system_code, record_id, filter, affected_count, details)
    VALUES (:actor, :ip, :user_agent, :channel, :action, :system_code, :record_id, CAST(:filter AS jsonb),
            :affected_count, CAST(:details AS jsonb))
""")


async def newest_first(
    connection: AsyncConnection,
    select_from: str,
    conditions: Mapping[str, str],
    where: msgspec.Struct,
    *,
    before_id: int | None,
    limit: int,
) -> list[RowMapping]:
    """One page of ``select_from`` by descending ``id``: the filter's set fields (each a fixed condition
    fragment of ``conditions``, values bound), after ``before_id`` when continuing."""
    params: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(where).items() if v is not None}
    clauses = [conditions[name] for name in params]
    if before_id is not None:
        clauses.append("id < :before_id")
        params["before_id"] = before_id
    where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = text(f"{select_from} {where_sql} ORDER BY id DESC LIMIT :limit")
    return list((await connection.execute(query, {**params, "limit": limit})).mappings())


class AdminRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def list_records(self, where: RecordFilter, *, before_id: int | None, limit: int) -> list[SyncRecordView]:
        """Newest first; ``before_id`` continues after the previous page."""
        rows = await newest_first(
            self._connection,
            f"SELECT {_VIEW_COLUMNS} FROM sync.external_sync_records",  # noqa: S608 - fixed fragments
            _CONDITIONS,
            where,
            before_id=before_id,
            limit=limit,
        )
        return [SyncRecordView(**row) for row in rows]

    async def status_of(self, customer_id: str) -> list[SystemSyncStatus]:
        result = await self._connection.execute(_STATUS, {"customer_id": customer_id})
        return [SystemSyncStatus(**row) for row in result.mappings()]

    async def lock_record(self, record_id: int) -> SyncRecordView | None:
        row = (await self._connection.execute(_LOCK_RECORD, {"id": record_id})).mappings().first()
        return None if row is None else SyncRecordView(**row)

    async def redrive(self, record_id: int, budget: int | None) -> SyncRecordView:
        row = (await self._connection.execute(_REDRIVE_ONE, {"id": record_id, "budget": budget})).mappings().one()
        return SyncRecordView(**row)

    async def redrive_failed(
        self, system_code: str, customer_id: str | None, *, budget: int | None, limit: int
    ) -> list[SyncRecordView]:
        result = await self._connection.execute(
            _REDRIVE_FAILED,
            {"system_code": system_code, "customer_id": customer_id, "budget": budget, "limit": limit},
        )
        return [SyncRecordView(**row) for row in result.mappings()]

    async def audit(self, action: AdminAction) -> None:
        values = msgspec.structs.asdict(action)
        values["filter"] = msgspec.json.encode(action.filter).decode()
        values["details"] = msgspec.json.encode(action.details).decode()
        await self._connection.execute(_AUDIT, values)


class AdminUnitOfWork(UnitOfWork):
    admin: AdminRepository

    def _bind(self, connection: AsyncConnection) -> None:
        self.admin = AdminRepository(connection)

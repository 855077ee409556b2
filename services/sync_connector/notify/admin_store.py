"""The notification records as the admin sees them: their table for the shared admin store, one with its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sync_connector.admin_store import RecordTable, RecordView


class NotificationView(RecordView, frozen=True, rename="camel"):
    """One record as the admin API and CLI show it (no contact data: the connector never holds any)."""

    event_id: str
    channel: str
    customer_id: str
    application_id: str
    status: str
    attempts: int
    max_attempts: int | None  # the optional count cap (None: sent until its deadline)
    resend_count: int
    next_attempt_at: datetime | None
    language: str | None
    message_id: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class NotificationAttemptView(msgspec.Struct, frozen=True, rename="camel"):
    attempt_no: int
    outcome: str
    error: str | None
    duration_ms: float
    attempted_at: datetime


class NotificationDetail(msgspec.Struct, frozen=True, rename="camel"):
    notification: NotificationView
    event: Any  # what the message says: names, application id, time
    attempt_log: list[NotificationAttemptView]


class NotificationFilter(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: str | None = None
    channel: str | None = None
    status: str | None = None
    event_id: str | None = None


_VIEW_COLUMNS = """
    id, event_id::text AS event_id, channel, customer_id, application_id, status, attempts, max_attempts,
    resend_count, next_attempt_at, language, message_id, last_error, created_at, updated_at, completed_at
"""
NOTIFICATION_RECORDS = RecordTable(
    name="sync.notification_records",
    view=NotificationView,
    columns=_VIEW_COLUMNS,
    filter=NotificationFilter,
    target="channel",
    status="status",
    attempts="attempts",
    cap="max_attempts",
    redrives="resend_count",
    also_cleared=("admin_noted_at",),  # failing again is news for the admins again
)
_ONE = text(f"SELECT {_VIEW_COLUMNS}, event FROM sync.notification_records WHERE id = :id")  # noqa: S608
_ATTEMPTS = text("""
    SELECT attempt_no, outcome, error, duration_ms, attempted_at FROM sync.notification_attempts
    WHERE record_id = :id ORDER BY attempt_no
""")


async def detail(connection: AsyncConnection, record_id: int) -> NotificationDetail | None:
    row = (await connection.execute(_ONE, {"id": record_id})).mappings().first()
    if row is None:
        return None
    values = dict(row)
    event = values.pop("event")
    attempts = await connection.execute(_ATTEMPTS, {"id": record_id})
    return NotificationDetail(
        NotificationView(**values), event, [NotificationAttemptView(**a) for a in attempts.mappings()]
    )

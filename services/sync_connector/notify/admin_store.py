"""The notification records as the admin sees them: their table for the shared admin store, one with its attempts."""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.connector_admin import Notification, NotificationAttempt, NotificationDetail
from services.sync_connector.admin_store import RecordTable


class NotificationFilter(msgspec.Struct, frozen=True, rename="camel"):
    """The listing's filters (``GET /v1/notifications``' query parameters); None: any."""

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
    view=Notification,
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
    return NotificationDetail(Notification(**values), event, [NotificationAttempt(**a) for a in attempts.mappings()])

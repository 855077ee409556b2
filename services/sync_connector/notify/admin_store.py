"""SQL for the notification admin: listing, one record with its attempts, re-send."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sync_connector.admin_store import newest_first


class NotificationView(msgspec.Struct, frozen=True, rename="camel"):
    """One record as the admin API and CLI show it (no contact data: the connector never holds any)."""

    id: int
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


class NotificationFilter(msgspec.Struct, frozen=True):
    customer_id: str | None = None
    channel: str | None = None
    status: str | None = None
    event_id: str | None = None


_VIEW_COLUMNS = """
    id, event_id::text AS event_id, channel, customer_id, application_id, status, attempts, max_attempts,
    resend_count, next_attempt_at, language, message_id, last_error, created_at, updated_at, completed_at
"""
_CONDITIONS = {
    "customer_id": "customer_id = :customer_id",
    "channel": "channel = :channel",
    "status": "status = :status",
    "event_id": "event_id = CAST(:event_id AS uuid)",
}
_ONE = text(f"SELECT {_VIEW_COLUMNS}, event FROM sync.notification_records WHERE id = :id")  # noqa: S608
_ATTEMPTS = text("""
    SELECT attempt_no, outcome, error, duration_ms, attempted_at FROM sync.notification_attempts
    WHERE record_id = :id ORDER BY attempt_no
""")
_LOCK = text(f"SELECT {_VIEW_COLUMNS} FROM sync.notification_records WHERE id = :id FOR UPDATE")  # noqa: S608
# A full deadline again (deliver_by NULL: set at the next attempt) and, with a count cap, another full
# budget of attempts on top of those spent; the claim and the lease are cleared.
_RESEND = f"""
    UPDATE sync.notification_records
    SET status = 'retrying', next_attempt_at = now(), deliver_by = NULL,
        max_attempts = attempts + CAST(:budget AS integer),
        resend_count = resend_count + 1, completed_at = NULL, claim_token = NULL, updated_at = now(),
        admin_noted_at = NULL
    WHERE id IN ({{ids}})
    RETURNING {_VIEW_COLUMNS}
"""  # noqa: S608 - fixed fragments, values are bound parameters
_RESEND_ONE = text(_RESEND.format(ids=":id"))
_RESEND_MANY = text(
    _RESEND.format(
        ids="""
        SELECT id FROM sync.notification_records
        WHERE channel = :channel AND status = :status
          AND (CAST(:customer_id AS varchar) IS NULL OR customer_id = :customer_id)
        ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"""
    )
)


class NotificationAdminRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def select(self, where: NotificationFilter, *, before_id: int | None, limit: int) -> list[NotificationView]:
        """Newest first; ``before_id`` continues after the previous page."""
        rows = await newest_first(
            self._connection,
            f"SELECT {_VIEW_COLUMNS} FROM sync.notification_records",  # noqa: S608 - fixed fragments
            _CONDITIONS,
            where,
            before_id=before_id,
            limit=limit,
        )
        return [NotificationView(**row) for row in rows]

    async def detail(self, record_id: int) -> NotificationDetail | None:
        row = (await self._connection.execute(_ONE, {"id": record_id})).mappings().first()
        if row is None:
            return None
        values = dict(row)
        event = values.pop("event")
        attempts = await self._connection.execute(_ATTEMPTS, {"id": record_id})
        return NotificationDetail(
            NotificationView(**values), event, [NotificationAttemptView(**a) for a in attempts.mappings()]
        )

    async def lock(self, record_id: int) -> NotificationView | None:
        row = (await self._connection.execute(_LOCK, {"id": record_id})).mappings().first()
        return None if row is None else NotificationView(**row)

    async def resend(self, record_id: int, budget: int | None) -> NotificationView:
        row = (await self._connection.execute(_RESEND_ONE, {"id": record_id, "budget": budget})).mappings().one()
        return NotificationView(**row)

    async def resend_many(
        self, channel: str, status: str, customer_id: str | None, *, budget: int | None, limit: int
    ) -> list[NotificationView]:
        params = {"channel": channel, "status": status, "customer_id": customer_id, "budget": budget, "limit": limit}
        result = await self._connection.execute(_RESEND_MANY, params)
        return [NotificationView(**row) for row in result.mappings()]

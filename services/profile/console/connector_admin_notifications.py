"""The sync-connector's admin notifications as its admin API answers them (``GET /v1/admin-notifications``)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class AdminNotificationExample(msgspec.Struct, frozen=True):
    subject: str
    at: datetime
    detail: str | None = None


class AdminNotification(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    notice_id: str
    cause_key: str
    window_start: datetime
    window_end: datetime
    occurrences: int
    occurrences_mailed: int | None
    first_seen_at: datetime
    last_seen_at: datetime
    examples: list[AdminNotificationExample]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    deliver_by: datetime | None
    message_id: str | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


class AdminNotificationPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[AdminNotification]
    next_cursor: str | None = None

"""``sync.notification_records``: one per (event, channel), its status, claim and attempts (SQL).

Unique on (event id, channel): a redelivered event finds its records and adds
none, so it never causes a second message. A send happens only under a claim
(a fencing token, the lease end in ``next_attempt_at``): a holder that dies
loses the record when the lease ends and any instance sends it again; a late
result of a lost claim changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.kit.db import UnitOfWork
from services.sync_connector.notify.settings import Channel


class NotificationStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED_NO_CONTACT = "skipped_no_contact"
    SKIPPED_STALE = "skipped_stale"


OPEN_STATUSES = frozenset({NotificationStatus.PENDING, NotificationStatus.RETRYING})


class NotificationRecord(msgspec.Struct, frozen=True):
    """A record as the sender sees it; ``event`` is the event's JSON (names, application id, time)."""

    id: int
    event_id: str
    channel: Channel
    customer_id: str
    status: NotificationStatus
    event: str
    event_headers: dict[str, str]
    attempts: int
    max_attempts: int


class Settlement(msgspec.Struct, frozen=True):
    """What one attempt makes of its record."""

    status: NotificationStatus
    outcome: str
    error: str | None
    delay_s: float  # before the next attempt, when retrying
    duration_s: float
    language: str | None = None
    message_id: str | None = None


_RECORD_COLUMNS = """
    id, event_id::text AS event_id, channel, customer_id, status, event::text AS event, event_headers,
    attempts, max_attempts
"""
_OPEN = text("""
    INSERT INTO sync.notification_records
        (event_id, channel, customer_id, application_id, status, event, event_headers, max_attempts,
         next_attempt_at, completed_at)
    SELECT CAST(:event_id AS uuid), channel, :customer_id, :application_id, s.status, CAST(:event AS jsonb),
           CAST(:event_headers AS jsonb), :max_attempts,
           CASE WHEN s.status = 'pending' THEN now() END, CASE WHEN s.status <> 'pending' THEN now() END
    FROM unnest(CAST(:channels AS text[])) AS channel, (SELECT CAST(:status AS varchar) AS status) AS s
    ON CONFLICT (event_id, channel) DO NOTHING
    RETURNING channel
""")
_DUE = text(f"""
    SELECT {_RECORD_COLUMNS} FROM sync.notification_records
    WHERE channel = :channel AND status IN ('pending', 'retrying') AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608 - fixed column list, values are bound parameters
_CLAIM = text("""
    UPDATE sync.notification_records
    SET claim_token = :token, next_attempt_at = now() + make_interval(secs => :lease_s), updated_at = now()
    WHERE id = :id
""")
_DEFER = text("""
    UPDATE sync.notification_records
    SET next_attempt_at = now() + make_interval(secs => :delay_s), updated_at = now()
    WHERE id = :id
""")
_SETTLE = text("""
    UPDATE sync.notification_records
    SET status = CAST(:status AS varchar), attempts = attempts + 1, last_error = :error,
        language = COALESCE(CAST(:language AS varchar), language),
        message_id = COALESCE(CAST(:message_id AS text), message_id),
        next_attempt_at = CASE WHEN CAST(:status AS varchar) = 'retrying'
                               THEN now() + make_interval(secs => :delay_s) END,
        completed_at = CASE WHEN CAST(:status AS varchar) = 'retrying' THEN NULL ELSE now() END,
        claim_token = NULL, updated_at = now()
    WHERE id = :id AND claim_token = :token
    RETURNING attempts
""")
_ATTEMPT = text("""
    INSERT INTO sync.notification_attempts (record_id, attempt_no, outcome, error, duration_ms)
    VALUES (:record_id, :attempt_no, :outcome, :error, :duration_ms)
""")


class NotificationRepository:
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
        event_json: bytes,
        event_headers: dict[str, str],
        channels: Sequence[Channel],
        max_attempts: int,
        status: NotificationStatus = NotificationStatus.PENDING,
    ) -> list[Channel]:
        """The event's records, one per channel; returns the channels whose record is new."""
        result = await self._run(
            _OPEN,
            event_id=event_id,
            customer_id=customer_id,
            application_id=application_id,
            status=status.value,
            event=event_json.decode(),
            event_headers=msgspec.json.encode(event_headers).decode(),
            max_attempts=max_attempts,
            channels=[channel.value for channel in channels],
        )
        return [Channel(channel) for channel in result.scalars()]

    async def due(self, channel: Channel, limit: int) -> list[NotificationRecord]:
        """Open records whose attempt time has come, locked; rows locked by others are skipped."""
        result = await self._run(_DUE, channel=channel.value, limit=limit)
        return [msgspec.convert(dict(row), NotificationRecord) for row in result.mappings()]

    async def claim(self, record_id: int, lease_s: float) -> str:
        """Take the record for one send; returns the fencing token its result must show."""
        token = str(uuid.uuid4())
        await self._run(_CLAIM, id=record_id, token=token, lease_s=lease_s)
        return token

    async def defer(self, record_id: int, delay_s: float) -> None:
        """No send now (the channel's breaker is open): look again after ``delay_s``, no attempt spent."""
        await self._run(_DEFER, id=record_id, delay_s=delay_s)

    async def settle(self, record_id: int, token: str, settlement: Settlement) -> bool:
        """Record one attempt's result; False (and nothing written) when the claim was lost."""
        result = await self._run(
            _SETTLE,
            id=record_id,
            token=token,
            status=settlement.status.value,
            error=settlement.error,
            language=settlement.language,
            message_id=settlement.message_id,
            delay_s=settlement.delay_s,
        )
        attempts = result.scalar_one_or_none()
        if attempts is None:
            return False
        await self._run(
            _ATTEMPT,
            record_id=record_id,
            attempt_no=attempts,
            outcome=settlement.outcome,
            error=settlement.error,
            duration_ms=settlement.duration_s * 1000,
        )
        return True


class NotificationUnitOfWork(UnitOfWork):
    notifications: NotificationRepository

    def _bind(self, connection: AsyncConnection) -> None:
        self.notifications = NotificationRepository(connection)

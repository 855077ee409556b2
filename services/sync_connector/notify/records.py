"""``sync.notification_records``: one per (event, channel), its status, claim and attempts (SQL).

Unique on (event id, channel): a redelivered event finds its records and adds
none, so it never causes a second message. A send happens only under a claim
(a fencing token, the lease end in ``next_attempt_at``): a holder that dies
loses the record when the lease ends and any instance sends it again; a late
result of a lost claim changes nothing. Times that decide a send (due, lease,
deadline) are the connector's clock (``:now``), as for the external systems.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db import UnitOfWork
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import Expired, Settlement
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
    max_attempts: int | None  # the optional count cap, attempts in all (None: sent until its deadline)
    deliver_by: datetime | None  # None: a full deadline from its next attempt (an admin re-sent it)

    @property
    def tries_spent(self) -> int:
        return self.attempts  # every earlier attempt of an open record failed

    @property
    def max_tries(self) -> int | None:
        return None if self.max_attempts is None else self.max_attempts - 1


NotificationSettlement = Settlement[NotificationRecord]


_RECORD_COLUMNS = """
    id, event_id::text AS event_id, channel, customer_id, status, event::text AS event, event_headers,
    attempts, max_attempts, deliver_by
"""
_OPEN = text("""
    INSERT INTO sync.notification_records
        (event_id, channel, customer_id, application_id, status, event, event_headers, max_attempts,
         next_attempt_at, completed_at, deliver_by)
    SELECT CAST(:event_id AS uuid), channel, :customer_id, :application_id, s.status, CAST(:event AS jsonb),
           CAST(:event_headers AS jsonb), CAST(:max_attempts AS integer),
           CASE WHEN s.status = 'pending' THEN CAST(:now AS timestamptz) END,
           CASE WHEN s.status <> 'pending' THEN now() END,
           CAST(:now AS timestamptz) + make_interval(secs => :deadline_s)
    FROM unnest(CAST(:channels AS text[])) AS channel, (SELECT CAST(:status AS varchar) AS status) AS s
    ON CONFLICT (event_id, channel) DO NOTHING
    RETURNING channel
""")
_DUE = text(f"""
    SELECT {_RECORD_COLUMNS} FROM sync.notification_records
    WHERE channel = :channel AND status IN ('pending', 'retrying') AND next_attempt_at <= CAST(:now AS timestamptz)
    ORDER BY next_attempt_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")  # noqa: S608 - fixed column list, values are bound parameters
_CLAIM = text("""
    UPDATE sync.notification_records
    SET claim_token = :token, next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :lease_s),
        updated_at = now()
    WHERE id = :id
""")
_DEFER = text("""
    UPDATE sync.notification_records
    SET next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :delay_s), updated_at = now()
    WHERE id = :id
""")
_SETTLE = text("""
    UPDATE sync.notification_records
    SET status = CAST(:status AS varchar), last_error = :error,
        attempts = attempts + CASE WHEN CAST(:counted AS boolean) THEN 1 ELSE 0 END,
        language = COALESCE(CAST(:language AS varchar), language),
        message_id = COALESCE(CAST(:message_id AS text), message_id),
        next_attempt_at = CASE WHEN CAST(:status AS varchar) = 'retrying'
                               THEN CAST(:now AS timestamptz) + make_interval(secs => :delay_s) END,
        deliver_by = CAST(:deliver_by AS timestamptz),
        completed_at = CASE WHEN CAST(:status AS varchar) = 'retrying' THEN NULL ELSE now() END,
        claim_token = NULL, updated_at = now()
    WHERE id = :id AND claim_token = :token
    RETURNING attempts
""")
# Open records past their deadline that nobody is sending (they waited behind an open breaker): failed.
_EXPIRE = text("""
    UPDATE sync.notification_records r
    SET status = 'failed', claim_token = NULL, next_attempt_at = NULL, updated_at = now(), completed_at = now(),
        last_error = :detail || COALESCE(' Last error: ' || r.last_error, '')
    WHERE r.id IN (
        SELECT o.id FROM sync.notification_records o
        WHERE o.channel = :channel AND o.status IN ('pending', 'retrying')
          AND o.deliver_by <= CAST(:now AS timestamptz)
          AND (o.claim_token IS NULL OR o.next_attempt_at <= CAST(:now AS timestamptz))
        ORDER BY o.deliver_by, o.id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING r.id, r.event_id::text AS event_id, r.customer_id
""")
_ATTEMPT = text("""
    INSERT INTO sync.notification_attempts (record_id, attempt_no, outcome, error, duration_ms)
    VALUES (:record_id, :attempt_no, :outcome, :error, :duration_ms)
""")


class NotificationRepository:
    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock

    async def _run(self, statement: Any, **params: Any) -> Any:
        return await self._connection.execute(statement, {"now": self._clock.now(), **params})

    async def open(
        self,
        *,
        event_id: str,
        customer_id: str,
        application_id: str,
        event_json: bytes,
        event_headers: dict[str, str],
        channels: Sequence[Channel],
        max_attempts: int | None,
        deadline_s: float,
        status: NotificationStatus = NotificationStatus.PENDING,
    ) -> list[Channel]:
        """The event's records, one per channel (to be sent within ``deadline_s`` from now); returns the
        channels whose record is new."""
        result = await self._run(
            _OPEN,
            event_id=event_id,
            customer_id=customer_id,
            application_id=application_id,
            status=status.value,
            event=event_json.decode(),
            event_headers=msgspec.json.encode(event_headers).decode(),
            max_attempts=max_attempts,
            deadline_s=deadline_s,
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

    async def settle(self, settlement: NotificationSettlement, status: NotificationStatus) -> bool:
        """Record one attempt's result as ``status``; False (and nothing written) when the claim was lost. A
        counted attempt gets an attempt row; a failed probe of a channel known to be down gets none."""
        result = settlement.result
        extra = result.attempted.extra
        row = await self._run(
            _SETTLE,
            id=settlement.record.id,
            token=settlement.token,
            status=status.value,
            error=result.error,
            counted=result.counted,
            language=extra.get("language"),
            message_id=extra.get("message_id"),
            delay_s=result.delay_s,
            deliver_by=result.deliver_by,
        )
        attempts = row.scalar_one_or_none()
        if attempts is None:
            return False
        if result.counted:
            await self._run(
                _ATTEMPT,
                record_id=settlement.record.id,
                attempt_no=attempts,
                outcome=result.attempted.label or result.classification.outcome.value,
                error=result.error,
                duration_ms=result.duration_s * 1000,
            )
        return True

    async def expire(self, channel: Channel, detail: str, limit: int) -> list[Expired]:
        """Fail up to ``limit`` open records of the channel past their deadline that nobody is sending."""
        result = await self._run(_EXPIRE, channel=channel.value, detail=detail, limit=limit)
        return [msgspec.convert(dict(row), Expired) for row in result.mappings()]


class NotificationUnitOfWork(UnitOfWork):
    notifications: NotificationRepository

    def __init__(self, engine: AsyncEngine, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(engine)
        self._clock = clock

    def _bind(self, connection: AsyncConnection) -> None:
        self.notifications = NotificationRepository(connection, self._clock)

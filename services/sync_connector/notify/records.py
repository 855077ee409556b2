"""``sync.notification_records``: one per (event, channel), its status, claim and attempts (SQL).

Unique on (event id, channel): a redelivered event finds its records and adds
none, so it never causes a second message. A send happens only under a claim
(a fencing token, the lease end in ``next_attempt_at``): a holder that dies
loses the record when the lease ends and any instance sends it again; a late
result of a lost claim changes nothing. Times that decide a send (due, lease,
deadline) are the connector's clock (``:now``), as for the external systems.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sync_connector.engine import Settlement
from services.sync_connector.ledger_sql import ClockedUnitOfWork, LedgerRepository, LedgerSql
from services.sync_connector.notify.settings import Channel


class NotificationStatus(StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED_NO_CONTACT = "skipped_no_contact"
    SKIPPED_STALE = "skipped_stale"


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
_LEDGER = LedgerSql(
    "sync.notification_records",
    columns=_RECORD_COLUMNS,
    scope="channel = :channel",
    settle_also="language = COALESCE(CAST(:language AS varchar), language),",
    expired="r.event_id::text AS event_id, r.customer_id",
)
_ATTEMPT = text("""
    INSERT INTO sync.notification_attempts (record_id, attempt_no, outcome, error, duration_ms)
    VALUES (:record_id, :attempt_no, :outcome, :error, :duration_ms)
""")


class NotificationRepository(LedgerRepository[NotificationRecord]):
    _sql = _LEDGER
    _record = NotificationRecord

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
            status=str(status),
            event=event_json.decode(),
            event_headers=msgspec.json.encode(event_headers).decode(),
            max_attempts=max_attempts,
            deadline_s=deadline_s,
            channels=[channel.value for channel in channels],
        )
        return [Channel(channel) for channel in result.scalars()]

    async def settle(self, settlement: NotificationSettlement, status: str) -> bool:
        """Record one attempt's result as ``status``; False (and nothing written) when the claim was lost. A
        counted attempt gets an attempt row; a failed probe of a channel known to be down gets none."""
        result = settlement.result
        attempts = await self._write_result(settlement, str(status), language=result.attempted.extra.get("language"))
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


class NotificationUnitOfWork(ClockedUnitOfWork):
    notifications: NotificationRepository

    def _bind(self, connection: AsyncConnection) -> None:
        self.notifications = NotificationRepository(connection, self._clock)

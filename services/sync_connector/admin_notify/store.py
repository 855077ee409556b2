"""``sync.admin_notifications`` and ``sync.admin_occurrences`` (SQL): windows per cause, what they counted,
their delivery state (the sources they count are in ``sources``).

Counting is serialised by a transaction-level advisory lock (one watcher round at a time across the
instances), so a cause never gets two windows for one period and an occurrence is counted once: an
occurrence key already open for its cause counts nothing. Times that decide a window or a send are the
connector's clock (``:now``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.connector_admin import AdminNotification, AdminNotificationExample
from services.sync_connector.engine import Settlement
from services.sync_connector.ledger_sql import ClockedUnitOfWork, LedgerRepository, LedgerSql

_LOCK_KEY = 0x61646D6E  # "admn": the watcher's round
MAX_DETAIL = 300


class AdminStatus:
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    ALL = (PENDING, RETRYING, SENT, FAILED)


class Occurrence(msgspec.Struct, frozen=True):
    """One thing that happened (or a state that began): ids and codes only, never names or contact data."""

    key: str  # unique among the cause's open occurrences
    at: datetime
    subject: str
    detail: str | None = None


class Counted(msgspec.Struct, frozen=True):
    notification_id: int
    new: int  # occurrences counted now (the others were already)
    opened: bool  # a new window


class AdminNotificationRecord(msgspec.Struct, frozen=True):
    """A window as the delivery engine and the mail see it."""

    id: int
    notice_id: str
    cause_key: str
    window_start: datetime
    window_end: datetime
    occurrences: int
    first_seen_at: datetime
    last_seen_at: datetime
    examples: list[AdminNotificationExample]
    status: str
    attempts: int
    deliver_by: datetime | None

    @property
    def event_id(self) -> str:
        return self.notice_id

    @property
    def event_headers(self) -> dict[str, str]:
        return {}

    @property
    def tries_spent(self) -> int:
        return self.attempts

    @property
    def max_tries(self) -> int | None:
        return None  # retried until its deadline


AdminSettlement = Settlement[AdminNotificationRecord]

_RECORD_COLUMNS = """
    id, notice_id::text AS notice_id, cause_key, window_start, window_end, occurrences, first_seen_at,
    last_seen_at, examples, status, attempts, deliver_by
"""
_VIEW_COLUMNS = """
    id, notice_id::text AS notice_id, cause_key, window_start, window_end, occurrences, occurrences_mailed,
    first_seen_at, last_seen_at, examples, status, attempts, next_attempt_at, deliver_by, message_id, last_error,
    created_at, completed_at
"""
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_OPEN_KEYS = text("""
    SELECT occurrence_key FROM sync.admin_occurrences
    WHERE cause_key = :cause AND resolved_at IS NULL AND occurrence_key = ANY(CAST(:keys AS text[]))
""")
_CURRENT_WINDOW = text("""
    SELECT id, examples FROM sync.admin_notifications
    WHERE cause_key = :cause AND window_end > CAST(:now AS timestamptz)
    ORDER BY window_start DESC LIMIT 1
    FOR UPDATE
""")
_OPEN_WINDOW = text("""
    INSERT INTO sync.admin_notifications
        (notice_id, cause_key, window_start, window_end, first_seen_at, last_seen_at, next_attempt_at, deliver_by)
    VALUES (CAST(:notice_id AS uuid), :cause, CAST(:now AS timestamptz),
            CAST(:now AS timestamptz) + make_interval(secs => :window_s), CAST(:first AS timestamptz),
            CAST(:now AS timestamptz), CAST(:now AS timestamptz) + make_interval(secs => :gather_s),
            CAST(:now AS timestamptz) + make_interval(secs => :gather_s + :deadline_s))
    RETURNING id
""")
_ADD_OCCURRENCES = text("""
    INSERT INTO sync.admin_occurrences (notification_id, cause_key, occurrence_key, occurred_at)
    SELECT :notification_id, :cause, k, t
    FROM unnest(CAST(:keys AS text[]), CAST(:times AS timestamptz[])) AS u(k, t)
""")
_COUNT = text("""
    UPDATE sync.admin_notifications
    SET occurrences = occurrences + :count, last_seen_at = CAST(:now AS timestamptz),
        first_seen_at = LEAST(first_seen_at, CAST(:first AS timestamptz)), examples = CAST(:examples AS jsonb),
        updated_at = now()
    WHERE id = :id
""")
_RESOLVE_ABSENT = text("""
    UPDATE sync.admin_occurrences SET resolved_at = CAST(:now AS timestamptz)
    WHERE cause_key = :cause AND resolved_at IS NULL AND NOT (occurrence_key = ANY(CAST(:present AS text[])))
""")
_LEDGER = LedgerSql(
    "sync.admin_notifications",
    columns=_RECORD_COLUMNS,
    settle_also="occurrences_mailed = COALESCE(CAST(:mailed AS integer), occurrences_mailed),",
    expired="r.notice_id::text AS event_id, r.cause_key AS customer_id",
)
_PAGE = f"""
    SELECT {_VIEW_COLUMNS} FROM sync.admin_notifications
    WHERE (CAST(:cause AS text) IS NULL OR cause_key = :cause)
      AND (CAST(:status AS text) IS NULL OR status = :status)
      AND (CAST(:before AS bigint) IS NULL OR id < :before)
    ORDER BY id DESC
    LIMIT :limit
"""  # noqa: S608 - fixed column list, values are bound parameters
_GET = text(f"SELECT {_VIEW_COLUMNS} FROM sync.admin_notifications WHERE id = :id")  # noqa: S608


class WindowPolicy(msgspec.Struct, frozen=True):
    window_s: float
    gather_s: float
    deadline_s: float
    max_examples: int


def _clip(detail: str | None) -> str | None:
    return None if detail is None else detail[:MAX_DETAIL]


class AdminStore(LedgerRepository[AdminNotificationRecord]):
    """The admin notification tables on one transaction's connection."""

    _sql = _LEDGER
    _record = AdminNotificationRecord

    # -- counting ----------------------------------------------------------------------------------------

    async def lock(self) -> None:
        """One watcher round at a time (across instances), until this transaction ends."""
        await self._connection.execute(_LOCK, {"key": _LOCK_KEY})

    async def count(self, cause: str, occurrences: Sequence[Occurrence], policy: WindowPolicy) -> Counted | None:
        """Count the occurrences not yet open for ``cause`` in its current window (opened when there is none);
        None when every one was counted before."""
        unique = list({o.key: o for o in occurrences}.values())
        if not unique:
            return None
        seen = set((await self._run(_OPEN_KEYS, cause=cause, keys=[o.key for o in unique])).scalars())
        new = [o for o in unique if o.key not in seen]
        if not new:
            return None
        first = min(o.at for o in new)
        row = (await self._run(_CURRENT_WINDOW, cause=cause)).mappings().first()
        if row is None:
            notification_id = (
                await self._run(
                    _OPEN_WINDOW,
                    notice_id=str(uuid.uuid4()),
                    cause=cause,
                    first=first,
                    window_s=policy.window_s,
                    gather_s=policy.gather_s,
                    deadline_s=policy.deadline_s,
                )
            ).scalar_one()
            examples: list[Any] = []
            opened = True
        else:
            notification_id, examples, opened = row["id"], list(row["examples"]), False
        room = max(policy.max_examples - len(examples), 0)
        examples += [
            msgspec.to_builtins(AdminNotificationExample(o.subject, o.at, _clip(o.detail)))
            for o in sorted(new, key=lambda o: o.at)[:room]
        ]
        await self._run(
            _ADD_OCCURRENCES,
            notification_id=notification_id,
            cause=cause,
            keys=[o.key for o in new],
            times=[o.at for o in new],
        )
        await self._run(
            _COUNT,
            id=notification_id,
            count=len(new),
            first=first,
            examples=msgspec.json.encode(examples).decode(),
        )
        return Counted(notification_id, len(new), opened)

    async def resolve_absent(self, cause: str, present: Sequence[str]) -> None:
        """A state that ended (a parked row re-driven): its occurrence is closed, so a new one counts again."""
        await self._run(_RESOLVE_ABSENT, cause=cause, present=list(present))

    # -- the delivery engine's ledger --------------------------------------------------------------------

    async def settle(self, settlement: AdminSettlement, status: str) -> bool:
        mailed = settlement.result.attempted.extra.get("occurrences")
        return await self._write_result(settlement, status, mailed=None if mailed is None else int(mailed)) is not None

    # -- the admin API -----------------------------------------------------------------------------------

    async def page(
        self, *, cause: str | None, status: str | None, before: int | None, limit: int
    ) -> list[AdminNotification]:
        result = await self._run(text(_PAGE), cause=cause, status=status, before=before, limit=limit)
        return [_view(row) for row in result.mappings()]

    async def get(self, notification_id: int) -> AdminNotification | None:
        row = (await self._run(_GET, id=notification_id)).mappings().first()
        return None if row is None else _view(row)


def _view(row: Any) -> AdminNotification:
    return AdminNotification(**{**row, "examples": msgspec.convert(row["examples"], list[AdminNotificationExample])})


class AdminUnitOfWork(ClockedUnitOfWork):
    admin: AdminStore

    def _bind(self, connection: AsyncConnection) -> None:
        self.admin = AdminStore(connection, self._clock)


def window_end(start: datetime, window_s: float) -> datetime:
    return start + timedelta(seconds=window_s)

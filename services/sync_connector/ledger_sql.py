"""The delivery engine's ledger on a table of mail-like records (customer notifications, admin mails): the
statements written once, each table described by its name, columns and scope.

A record is due when it is open (``pending`` or ``retrying``) and its ``next_attempt_at`` has come. A send
happens only under a claim (a fencing token, the lease end in ``next_attempt_at``): a holder that dies loses
the record when the lease ends; a late result of a lost claim changes nothing. Open records past their
deadline that nobody is sending (they waited behind an open breaker) fail. Times that decide a send are the
connector's clock (``:now``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db import UnitOfWork
from services.sync_connector.attempts import CallResult
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import Admission, DeliveryRecord, Expired, Settlement

RecordT = TypeVar("RecordT", bound=DeliveryRecord)


class LedgerSql:
    """The statements on ``table``: ``columns`` is what a record reads; ``scope`` limits due and expired
    records (to a channel: ``channel = :channel``); ``settle_also`` sets the table's own columns from a
    result; ``expired`` names an expired record's event id and customer (alias ``r``)."""

    def __init__(self, table: str, *, columns: str, scope: str = "TRUE", settle_also: str, expired: str) -> None:
        self.due = text(f"""
            SELECT {columns} FROM {table}
            WHERE {scope} AND status IN ('pending', 'retrying') AND next_attempt_at <= CAST(:now AS timestamptz)
            ORDER BY next_attempt_at, id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        """)  # noqa: S608 - fixed table and column lists, values are bound parameters
        self.claim = text(f"""
            UPDATE {table}
            SET claim_token = CAST(:token AS uuid),
                next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :lease_s), updated_at = now()
            WHERE id = :id
        """)  # noqa: S608
        self.defer = text(f"""
            UPDATE {table}
            SET next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :delay_s), updated_at = now()
            WHERE id = :id
        """)  # noqa: S608
        self.settle = text(f"""
            UPDATE {table}
            SET status = CAST(:status AS varchar), last_error = :error,
                attempts = attempts + CASE WHEN CAST(:counted AS boolean) THEN 1 ELSE 0 END,
                {settle_also}
                message_id = COALESCE(CAST(:message_id AS text), message_id),
                next_attempt_at = CASE WHEN CAST(:status AS varchar) = 'retrying'
                                       THEN CAST(:now AS timestamptz) + make_interval(secs => :delay_s) END,
                deliver_by = CAST(:deliver_by AS timestamptz),
                completed_at = CASE WHEN CAST(:status AS varchar) = 'retrying' THEN NULL ELSE now() END,
                claim_token = NULL, updated_at = now()
            WHERE id = :id AND claim_token = CAST(:token AS uuid)
            RETURNING attempts
        """)  # noqa: S608
        self.expire = text(f"""
            UPDATE {table} r
            SET status = 'failed', claim_token = NULL, next_attempt_at = NULL, updated_at = now(),
                completed_at = now(), last_error = :detail || COALESCE(' Last error: ' || r.last_error, '')
            WHERE r.id IN (
                SELECT o.id FROM {table} o
                WHERE {scope} AND o.status IN ('pending', 'retrying') AND o.deliver_by <= CAST(:now AS timestamptz)
                  AND (o.claim_token IS NULL OR o.next_attempt_at <= CAST(:now AS timestamptz))
                ORDER BY o.deliver_by, o.id
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            RETURNING r.id, {expired}
        """)  # noqa: S608


class LedgerRepository(Generic[RecordT]):
    """One table's ledger (``_sql``, its records read as ``_record``) on one transaction's connection;
    subclasses write a result (``settle``) and add what their table has of its own."""

    _sql: ClassVar[LedgerSql]
    _record: type[RecordT]

    def __init__(self, connection: AsyncConnection, clock: Clock) -> None:
        self._connection = connection
        self._clock = clock

    async def _run(self, statement: TextClause, **params: Any) -> Any:
        return await self._connection.execute(statement, {"now": self._clock.now(), **params})

    async def due(self, limit: int, **scope: Any) -> list[RecordT]:
        """Open records whose attempt time has come, locked; rows locked by others are skipped."""
        result = await self._run(self._sql.due, limit=limit, **scope)
        return [msgspec.convert(dict(row), self._record) for row in result.mappings()]

    async def claim(self, record_id: int, lease_s: float) -> str:
        """Take the record for one send; returns the fencing token its result must show."""
        token = str(uuid.uuid4())
        await self._run(self._sql.claim, id=record_id, token=token, lease_s=lease_s)
        return token

    async def defer(self, record_id: int, delay_s: float) -> None:
        """No send now (the breaker is open): look again after ``delay_s``, no attempt spent."""
        await self._run(self._sql.defer, id=record_id, delay_s=delay_s)

    async def settle(self, settlement: Settlement[RecordT], status: str) -> bool:
        """Record one attempt's result as ``status``; False (and nothing written) when the claim was lost."""
        raise NotImplementedError

    async def _write_result(self, settlement: Settlement[RecordT], status: str, **also: Any) -> int | None:
        """``settle`` for one result under its claim (``also``: the values of the table's ``settle_also``);
        the record's attempts after it, None when the claim was lost."""
        result = settlement.result
        row = await self._run(
            self._sql.settle,
            id=settlement.record.id,
            token=settlement.token,
            status=status,
            error=result.error,
            counted=result.counted,
            message_id=result.attempted.extra.get("message_id"),
            delay_s=result.delay_s,
            deliver_by=result.deliver_by,
            **also,
        )
        attempts: int | None = row.scalar_one_or_none()
        return attempts

    async def expire(self, detail: str, limit: int, **scope: Any) -> list[Expired]:
        """Fail up to ``limit`` open records past their deadline that nobody is sending."""
        result = await self._run(self._sql.expire, detail=detail, limit=limit, **scope)
        return [msgspec.convert(dict(row), Expired) for row in result.mappings()]


class TableLedger(Generic[RecordT]):
    """The delivery engine's ``Ledger`` over one table's records (of one ``scope``) inside one transaction.
    No lanes: every due record goes."""

    def __init__(
        self,
        uow: UnitOfWork,
        records: LedgerRepository[RecordT],
        status_of: Callable[[CallResult], str],
        **scope: Any,
    ) -> None:
        self._uow = uow
        self._records = records
        self._status_of = status_of
        self._scope = scope

    async def due(self, limit: int) -> list[RecordT]:
        return await self._records.due(limit, **self._scope)

    async def admit(self, record: RecordT) -> Admission:  # noqa: ARG002 - no lanes
        return Admission.SEND

    async def defer(self, record: RecordT, wait_s: float) -> None:
        await self._records.defer(record.id, wait_s)

    async def claim(self, records: Sequence[RecordT], lease_s: float) -> list[str]:
        return [await self._records.claim(record.id, lease_s) for record in records]

    async def settle(self, settlements: Sequence[Settlement[RecordT]]) -> list[Settlement[RecordT]]:
        return [s for s in settlements if await self._records.settle(s, self._status_of(s.result))]

    async def expire(self, detail: str, limit: int) -> list[Expired]:
        return await self._records.expire(detail, limit, **self._scope)

    async def commit(self) -> None:
        await self._uow.commit()


class ClockedUnitOfWork(UnitOfWork):
    """A unit of work whose repositories read the time from the connector's clock."""

    def __init__(self, engine: AsyncEngine, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(engine)
        self._clock = clock

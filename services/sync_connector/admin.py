"""Admin use cases (seed 000 ``getSyncStatus`` / ``retryFailedSync``): one unit of work each, audited.

Shared by the HTTP API and the CLI. A re-drive only resets a ``failed`` record
to ``retrying`` with ``next_attempt_at = now()``; the retry scheduler of any
connector instance then delivers it under the usual lane rule, with the same
``Idempotency-Key`` (the event id). So a re-drive keeps per-customer order: an
old record whose system already holds a newer version ends ``superseded``
instead of being sent, and a re-driven record waits behind an older open one.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.errors import ConflictError, NotFoundError, ValidationError
from libs.kit.logging import get_logger
from services.sync_connector.admin_store import (
    AdminAction,
    AdminUnitOfWork,
    RecordFilter,
    SyncRecordView,
    SystemSyncStatus,
)
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import SyncStatus
from services.sync_connector.sinks import EXTERNAL_SYSTEMS

log = get_logger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SYSTEM_CODES = frozenset(system.code for system in EXTERNAL_SYSTEMS)
_CURSOR_PREFIX = "r:"


class SyncRecordNotFound(NotFoundError):
    code = "SYNC_RECORD_NOT_FOUND"
    title = "Sync record not found"


class SyncStatusNotFound(NotFoundError):
    code = "SYNC_STATUS_NOT_FOUND"
    title = "No sync records for this customer"


class InvalidStatus(ConflictError):
    """Only a ``failed`` record can be retried (seed 6.1 INVALID_STATUS)."""

    code = "INVALID_STATUS"
    title = "Invalid status for this operation"


class Actor(msgspec.Struct, frozen=True):
    """Who asks, for the audit log."""

    actor_id: str
    channel: str  # http | cli
    ip: str | None = None
    user_agent: str | None = None


class RecordPage(msgspec.Struct, frozen=True, rename="camel"):
    items: list[SyncRecordView]
    next_cursor: str | None


class CustomerSyncStatus(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: str
    systems: list[SystemSyncStatus]


class BulkRetryResult(msgspec.Struct, frozen=True, rename="camel"):
    system_code: str
    count: int
    record_ids: list[int]
    # The limit was reached: more failed records may remain; repeat the call.
    limit_reached: bool


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        last_id = int(raw.removeprefix(_CURSOR_PREFIX)) if raw.startswith(_CURSOR_PREFIX) else None
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        last_id = None
    if last_id is None:
        raise ValidationError("cursor is not one this API returned")
    return last_id


def page_start(cursor: str | None, limit: int) -> int | None:
    """The id a page continues after (from the previous page's cursor), once ``limit`` is checked."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return decode_cursor(cursor) if cursor else None


class _Identified(Protocol):
    @property
    def id(self) -> int: ...


RowT = TypeVar("RowT", bound=_Identified)


def page_end(rows: Sequence[RowT], limit: int) -> tuple[list[RowT], str | None]:
    """The page and the next page's cursor; ``rows`` holds one row more than asked when another page follows."""
    items = list(rows[:limit])
    return items, encode_cursor(items[-1].id) if len(rows) > limit else None


def validate_filter(where: RecordFilter) -> RecordFilter:
    if where.system_code is not None and where.system_code not in SYSTEM_CODES:
        raise ValidationError(f"systemCode must be one of {sorted(SYSTEM_CODES)}")
    check_status_and_event_id(where.status, SyncStatus, where.event_id)
    return where


def check_status_and_event_id(status: str | None, statuses: Iterable[str], event_id: str | None) -> None:
    """The listing filters every record kind shares: a known status, an event id that is a UUID."""
    allowed = sorted(str(known) for known in statuses)
    if status is not None and status not in allowed:
        raise ValidationError(f"status must be one of {allowed}")
    if event_id is not None:
        try:
            uuid.UUID(event_id)
        except ValueError as exc:
            raise ValidationError("eventId must be a UUID") from exc


class SyncAdmin:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry_budget: int | None,
        bulk_limit: int,
        metrics: ConnectorMetrics | None = None,
    ) -> None:
        self._engine = engine
        self._retry_budget = retry_budget
        self._bulk_limit = bulk_limit
        self._metrics = metrics

    def _count(self, actor: Actor, records: int) -> None:
        if self._metrics is not None:
            self._metrics.admin_retries.labels(actor.channel).inc(records)

    async def list_records(
        self, where: RecordFilter, *, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> RecordPage:
        before_id = page_start(cursor, limit)
        async with AdminUnitOfWork(self._engine) as uow:
            rows = await uow.admin.list_records(validate_filter(where), before_id=before_id, limit=limit + 1)
        return RecordPage(*page_end(rows, limit))

    async def sync_status(self, customer_id: str) -> CustomerSyncStatus:
        async with AdminUnitOfWork(self._engine) as uow:
            systems = await uow.admin.status_of(customer_id)
        if not systems:
            raise SyncStatusNotFound(f"no sync records for customer {customer_id!r}")
        return CustomerSyncStatus(customer_id, systems)

    async def retry_record(self, record_id: int, actor: Actor) -> SyncRecordView:
        async with AdminUnitOfWork(self._engine) as uow:
            record = await uow.admin.lock_record(record_id)
            if record is None:
                raise SyncRecordNotFound(f"sync record {record_id} does not exist")
            if record.sync_status != SyncStatus.FAILED:
                raise InvalidStatus(f"sync record {record_id} is {record.sync_status}; only failed records are retried")
            redriven = await uow.admin.redrive(record_id, self._retry_budget)
            await uow.admin.audit(
                admin_action(
                    actor,
                    "retry_record",
                    1,
                    system_code=record.system_code,
                    record_id=record_id,
                    details={"retryCountBefore": record.retry_count, "lastError": record.error_message},
                )
            )
            await uow.commit()
        self._count(actor, 1)
        log.info("sync_record_redriven", record_id=record_id, actor=actor.actor_id, channel=actor.channel)
        return redriven

    async def retry_failed(
        self, system_code: str, actor: Actor, *, status: str = SyncStatus.FAILED, customer_id: str | None = None
    ) -> BulkRetryResult:
        if system_code not in SYSTEM_CODES:
            raise ValidationError(f"systemCode must be one of {sorted(SYSTEM_CODES)}")
        if status != SyncStatus.FAILED:
            raise ValidationError("status must be 'failed': only failed records are retried")
        async with AdminUnitOfWork(self._engine) as uow:
            records = await uow.admin.redrive_failed(
                system_code, customer_id, budget=self._retry_budget, limit=self._bulk_limit
            )
            ids = sorted(record.id for record in records)
            where = {"systemCode": system_code, "status": status, "customerId": customer_id}
            await uow.admin.audit(
                admin_action(
                    actor,
                    "retry_failed",
                    len(ids),
                    system_code=system_code,
                    where={k: v for k, v in where.items() if v is not None},
                    details={"recordIds": ids},
                )
            )
            await uow.commit()
        self._count(actor, len(ids))
        log.info("sync_records_redriven", system_code=system_code, count=len(ids), actor=actor.actor_id)
        return BulkRetryResult(system_code, len(ids), ids, limit_reached=len(ids) >= self._bulk_limit)


def admin_action(
    actor: Actor,
    action: str,
    count: int,
    *,
    system_code: str | None = None,
    record_id: int | None = None,
    where: dict[str, object] | None = None,
    details: dict[str, object] | None = None,
) -> AdminAction:
    """The audit row of an admin action (a retry of sync records, a re-send of notifications)."""
    return AdminAction(
        actor=actor.actor_id,
        ip=actor.ip,
        user_agent=actor.user_agent,
        channel=actor.channel,
        action=action,
        affected_count=count,
        system_code=system_code,
        record_id=record_id,
        filter=dict(where or {}),
        details=dict(details or {}),
    )

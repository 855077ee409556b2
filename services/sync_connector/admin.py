"""Admin use cases for every kind of delivery record: list, re-drive one or many; one unit of work each, audited.

Shared by the HTTP API and the CLI, for the external systems' sync records (seed 000
``getSyncStatus`` / ``retryFailedSync``) and the customer notifications alike: each kind is an
``AdminKind``, a description of its table, vocabulary and audit names. A re-drive only resets a
record to ``retrying`` with ``next_attempt_at = now()``; the scheduler of its system or channel in
any connector instance then delivers it under the usual rules, with the same ``Idempotency-Key``
(the event id). So a re-drive keeps per-customer order: an old sync record whose system already
holds a newer version ends ``superseded`` instead of being sent, and a re-driven record waits
behind an older open one.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.connector_admin import BulkRetryResult, CustomerSyncStatus, SyncRecord, SyncRecordFilter
from libs.kit.errors import ConflictError, NotFoundError, ValidationError
from libs.kit.logging import get_logger
from services.sync_connector.admin_store import (
    SYNC_RECORDS,
    Actor,
    AdminAction,
    AdminUnitOfWork,
    RecordTable,
    RecordView,
    latest_per_system,
)
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.outcome import SyncStatus
from services.sync_connector.sinks import EXTERNAL_SYSTEMS

log = get_logger(__name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_CURSOR_PREFIX = "r:"
# What ``encode_cursor`` makes, and nothing else: base64url (unpadded) of "r:" and 1 to 19 digits (an id).
# Spelled out so that the OpenAPI document states the rule the API enforces: "cjo" and the first digit's
# last character, then four characters per three digits, then those of a last one or two digits.
_THREE_DIGITS = "(?:[MN][DTjz]|O[DT])[AEIMQUYcgk][w-z0-5]"
_LAST_DIGITS = "(?:[MN][AQgw]|O[AQ]|(?:[MN][DTjz]|O[DT])[AEIMQUYcgk])"
CURSOR_PATTERN = f"^cjo[w-z0-5](?:(?:{_THREE_DIGITS}){{0,5}}{_LAST_DIGITS}?|(?:{_THREE_DIGITS}){{6}})$"
BIGINT_MAX = 2**63 - 1
CURSOR_RULE = re.compile(CURSOR_PATTERN)
# An event id as the events carry it (the hyphenated form; PostgreSQL would take others too).
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UUID_RULE = re.compile(UUID_PATTERN)


class InvalidStatus(ConflictError, code="INVALID_STATUS", title="Invalid status for this operation"):
    """Only a record in a re-drivable status (a ``failed`` one, say) is re-driven (seed 6.1 INVALID_STATUS)."""


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if CURSOR_RULE.fullmatch(cursor) is None:  # "$" is the end of the string, as in the OpenAPI document
        raise ValidationError("cursor is not one this API returned")
    last_id = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().removeprefix(_CURSOR_PREFIX))
    return min(last_id, BIGINT_MAX)  # 19 digits may pass an id column's range: every id is below it


def page_start(cursor: str | None, limit: int) -> int | None:
    """The id a page continues after (from the previous page's cursor), once ``limit`` is checked."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return decode_cursor(cursor) if cursor else None


ViewT = TypeVar("ViewT", bound=RecordView)
FilterT = TypeVar("FilterT", bound=msgspec.Struct)
ResultT = TypeVar("ResultT")


def page_end(rows: Sequence[ViewT], limit: int) -> tuple[list[ViewT], str | None]:
    """The page and the next page's cursor; ``rows`` holds one row more than asked when another page follows."""
    items = list(rows[:limit])
    return items, encode_cursor(items[-1].id) if len(rows) > limit else None


def _names(values: Iterable[str]) -> list[str]:
    return sorted(str(value) for value in values)  # str(): a StrEnum member's value, not its repr


def check_status_and_event_id(status: str | None, statuses: Iterable[str], event_id: str | None) -> None:
    """The listing filters every record kind shares: a known status, an event id that is a UUID."""
    allowed = _names(statuses)
    if status is not None and status not in allowed:
        raise ValidationError(f"status must be one of {allowed}")
    if event_id is not None and UUID_RULE.fullmatch(event_id) is None:
        raise ValidationError("eventId must be a UUID")


class RecordPage(msgspec.Struct, Generic[ViewT], frozen=True, rename="camel"):
    items: list[ViewT]
    next_cursor: str | None


@dataclass(frozen=True)
class AdminKind(Generic[ViewT, ResultT]):
    """What the admin use cases need to know of one kind of record."""

    table: RecordTable[ViewT]
    noun: str  # in messages: "sync record", "notification"
    redriven: str  # in messages: "retried", "re-sent"
    not_found: type[NotFoundError]
    statuses: Sequence[str]  # every status a record can have (the listing's filter)
    targets: Sequence[str]  # the systems or channels a record can go to
    redrivable: Collection[str]  # the statuses a record can be re-driven from
    # The audit log: the actions (one record, many), the system_code written for a target, what a
    # one-record row keeps of the record before, the key of the ids of a bulk row's details, and
    # whether a bulk row's filter names the target (the external systems' rows do).
    actions: tuple[str, str]
    audit_code: Callable[[str], str]
    audit_before: Callable[[ViewT], dict[str, object]]
    audit_ids_key: str
    target_in_audit_filter: bool
    # What a bulk re-drive answers: (target, status, record ids, limit reached) -> result.
    bulk_result: Callable[[str, str, list[int], bool], ResultT]

    @cached_property
    def target_param(self) -> str:
        """How the API names the target (``systemCode``, ``channel``): as the listing's filter does."""
        return next(f.encode_name for f in msgspec.structs.fields(self.table.filter) if f.name == self.table.target)

    def check_target(self, target: str) -> None:
        if target not in self.targets:
            raise ValidationError(f"{self.target_param} must be one of {_names(self.targets)}")

    def check_filter(self, where: FilterT) -> FilterT:
        """The listing's filter (a ``table.filter``), returned as it is when every set field is known."""
        fields = msgspec.structs.asdict(where)
        if fields[self.table.target] is not None:
            self.check_target(fields[self.table.target])
        check_status_and_event_id(fields["status"], self.statuses, fields["event_id"])
        return where


AfterRedrive = Callable[[str, str, int], None]  # (target, actor channel, records re-driven)


class RecordAdmin(Generic[ViewT, ResultT]):
    """List and re-drive the records of one kind; the kind's own reads are added by its subclass."""

    def __init__(
        self,
        engine: AsyncEngine,
        kind: AdminKind[ViewT, ResultT],
        *,
        budget: int | None,
        bulk_limit: int,
        after_redrive: AfterRedrive | None = None,
    ) -> None:
        self._engine = engine
        self.kind = kind
        self._budget = budget  # the count cap's new budget (None: no cap, the deadline alone)
        self._bulk_limit = bulk_limit
        self._after_redrive = after_redrive

    def _unit_of_work(self) -> AdminUnitOfWork[ViewT]:
        return AdminUnitOfWork(self._engine, self.kind.table)

    async def list_records(
        self, where: msgspec.Struct, *, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> RecordPage[ViewT]:
        before_id = page_start(cursor, limit)
        async with self._unit_of_work() as uow:
            rows = await uow.records.page(self.kind.check_filter(where), before_id=before_id, limit=limit + 1)
        return RecordPage(*page_end(rows, limit))

    async def redrive(self, record_id: int, actor: Actor) -> ViewT:
        kind = self.kind
        async with self._unit_of_work() as uow:
            record = await uow.records.lock(record_id)
            if record is None:
                raise kind.not_found(f"{kind.noun} {record_id} does not exist")
            status, target = getattr(record, kind.table.status), getattr(record, kind.table.target)
            if status not in kind.redrivable:
                only = ", ".join(_names(kind.redrivable))
                raise InvalidStatus(f"{kind.noun} {record_id} is {status}; only {only} ones are {kind.redriven}")
            redriven = await uow.records.redrive(record_id, self._budget)
            code = kind.audit_code(target)
            before = kind.audit_before(record)
            await uow.audit.write(
                actor, AdminAction(kind.actions[0], 1, system_code=code, record_id=record_id, details=before)
            )
            await uow.commit()
        self._redriven(target, actor, 1)
        log.info(kind.actions[0], record_id=record_id, system_code=code, actor=actor.actor_id, via=actor.channel)
        return redriven

    async def redrive_many(
        self, target: str, actor: Actor, *, status: str = "failed", customer_id: str | None = None
    ) -> ResultT:
        """Every record of ``target`` in ``status`` (of one customer, when given), up to the bulk limit."""
        kind = self.kind
        kind.check_target(target)
        if status not in kind.redrivable:
            raise ValidationError(f"status must be one of {_names(kind.redrivable)}")
        async with self._unit_of_work() as uow:
            records = await uow.records.redrive_many(
                target, status, customer_id, budget=self._budget, limit=self._bulk_limit
            )
            ids = sorted(record.id for record in records)
            where: dict[str, object] = {kind.target_param: target} if kind.target_in_audit_filter else {}
            where.update(status=status, customerId=customer_id)
            code = kind.audit_code(target)
            await uow.audit.write(
                actor,
                AdminAction(
                    kind.actions[1],
                    len(ids),
                    system_code=code,
                    filter={k: v for k, v in where.items() if v is not None},
                    details={kind.audit_ids_key: ids},
                ),
            )
            await uow.commit()
        self._redriven(target, actor, len(ids))
        log.info(kind.actions[1], system_code=code, count=len(ids), actor=actor.actor_id, via=actor.channel)
        return kind.bulk_result(target, status, ids, len(ids) >= self._bulk_limit)

    def _redriven(self, target: str, actor: Actor, count: int) -> None:
        if self._after_redrive is not None:
            self._after_redrive(target, actor.channel, count)


# The external systems' records.


class SyncRecordNotFound(NotFoundError, code="SYNC_RECORD_NOT_FOUND", title="Sync record not found"): ...


class SyncStatusNotFound(NotFoundError, code="SYNC_STATUS_NOT_FOUND", title="No sync records for this customer"): ...


SYNC_KIND: AdminKind[SyncRecord, BulkRetryResult] = AdminKind(
    table=SYNC_RECORDS,
    noun="sync record",
    redriven="retried",
    not_found=SyncRecordNotFound,
    statuses=tuple(SyncStatus),
    targets=tuple(system.code for system in EXTERNAL_SYSTEMS),
    redrivable=(SyncStatus.FAILED,),
    actions=("retry_record", "retry_failed"),
    audit_code=lambda system_code: system_code,
    audit_before=lambda record: {"retryCountBefore": record.retry_count, "lastError": record.error_message},
    audit_ids_key="recordIds",
    target_in_audit_filter=True,
    bulk_result=lambda system_code, _, ids, limit_reached: BulkRetryResult(system_code, len(ids), ids, limit_reached),
)


def validate_filter(where: SyncRecordFilter) -> SyncRecordFilter:
    return SYNC_KIND.check_filter(where)


class SyncAdmin(RecordAdmin[SyncRecord, BulkRetryResult]):
    """The external systems' records, and a customer's latest record at every system."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry_budget: int | None,
        bulk_limit: int,
        metrics: ConnectorMetrics | None = None,
    ) -> None:
        def counted(_: str, via: str, count: int) -> None:
            if metrics is not None:
                metrics.admin_retries.labels(via).inc(count)

        super().__init__(engine, SYNC_KIND, budget=retry_budget, bulk_limit=bulk_limit, after_redrive=counted)

    async def sync_status(self, customer_id: str) -> CustomerSyncStatus:
        async with self._unit_of_work() as uow:
            systems = await latest_per_system(uow.connection, customer_id)
        if not systems:
            raise SyncStatusNotFound(f"no sync records for customer {customer_id!r}")
        return CustomerSyncStatus(customer_id, systems)

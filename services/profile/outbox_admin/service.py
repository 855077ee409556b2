"""Admin use cases on the outbox: list, inspect, re-drive (audited). One unit of work each.

Re-drive keeps per-customer order because a re-driven row keeps its ``seq``: see
``libs.outbox.admin`` for what re-driving a failed or a published row means.
"""

from __future__ import annotations

import uuid
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import msgspec

from libs.kit.errors import NotFoundError, ValidationError
from libs.kit.logging import get_logger
from libs.kit.metrics import MetricSet, counter
from libs.outbox.admin import OutboxEntry, OutboxFilter, RedrivenRow
from libs.outbox.table import OutboxStatus
from services.profile.domain.lookup import found
from services.profile.shared.audit import actor_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.ports import AuditEntry, AuditLog, Transaction
from services.profile.shared.results import Actor

log = get_logger(__name__)
REDRIVEN_EVENT = "OUTBOX_REDRIVEN"


class OutboxEntryNotFound(NotFoundError, code="OUTBOX_ENTRY_NOT_FOUND", title="Outbox entry not found"): ...


class InvalidOutboxFilter(ValidationError, code="INVALID_OUTBOX_FILTER", title="Invalid outbox filter"): ...


class RedriveLimitExceeded(ValidationError, code="REDRIVE_LIMIT_EXCEEDED", title="Re-drive matches too many rows"): ...


class OutboxAdminPort(Protocol):
    async def page(self, where: OutboxFilter, after_seq: int | None, limit: int) -> list[OutboxEntry]: ...
    async def get(self, entry_id: uuid.UUID) -> OutboxEntry | None: ...
    async def latest(self, aggregate_id: str, limit: int) -> list[OutboxEntry]: ...
    async def existing(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...
    async def redrive_ids(self, ids: Sequence[uuid.UUID]) -> list[RedrivenRow]: ...
    async def redrive_matching(self, where: OutboxFilter, limit: int) -> list[RedrivenRow]: ...


class OutboxAdminUnitOfWork(Transaction, Protocol):
    @property
    def outbox_admin(self) -> OutboxAdminPort: ...
    @property
    def audit(self) -> AuditLog: ...


OutboxAdminUnitOfWorkFactory: TypeAlias = Callable[[], OutboxAdminUnitOfWork]


class OutboxAdminLimits(msgspec.Struct, frozen=True):
    max_page_size: int = 500
    redrive_max_rows: int = 10_000


class OutboxPage(msgspec.Struct, frozen=True):
    items: list[OutboxEntry]
    # The cursor of the next page (the last seq of this one), None on the last page.
    next_after: int | None


class RedriveSelection(msgspec.Struct, frozen=True):
    """Either explicit ids or a filter (whose status must be failed or published)."""

    ids: tuple[uuid.UUID, ...] = ()
    where: OutboxFilter | None = None


class RedriveResult(msgspec.Struct, frozen=True, rename="camel"):
    redriven: int
    # Ids given that were pending already (on their way): left alone.
    skipped: int
    ids: list[str]


class OutboxAdminMetrics(MetricSet):
    redriven_rows = counter(
        "outbox_admin_redriven_rows", "Outbox rows set back to pending by an admin", ["previous_status"]
    )
    redrives = counter("outbox_admin_redrives", "Audited re-drive requests")


@dataclass(frozen=True)
class OutboxAdminService:
    uow_factory: OutboxAdminUnitOfWorkFactory
    limits: OutboxAdminLimits
    metrics: OutboxAdminMetrics
    clock: Clock = utc_now

    async def list_entries(self, where: OutboxFilter, after_seq: int | None, limit: int) -> OutboxPage:
        _check_range(where)
        _check_limit(limit, self.limits)
        async with self.uow_factory() as uow:
            items = await uow.outbox_admin.page(where, after_seq, limit)
        return OutboxPage(items, items[-1].seq if len(items) == limit else None)

    async def get(self, entry_id: uuid.UUID) -> OutboxEntry:
        async with self.uow_factory() as uow:
            entry = await uow.outbox_admin.get(entry_id)
        return found(entry, OutboxEntryNotFound(f"outbox entry {entry_id} not found"))

    async def latest_of(self, customer_id: str, limit: int) -> list[OutboxEntry]:
        """A customer's newest ``limit`` entries, newest first, with payload and headers (for the journey page)."""
        _check_limit(limit, self.limits)
        async with self.uow_factory() as uow:
            return await uow.outbox_admin.latest(customer_id, limit)

    async def redrive(self, selection: RedriveSelection, actor: Actor) -> RedriveResult:
        """Set the selected failed/published rows back to pending, in one audited transaction."""
        now = self.clock()
        request = _validated(selection, self.limits)
        async with self.uow_factory() as uow:
            if selection.where is None:
                missing = set(selection.ids) - await uow.outbox_admin.existing(selection.ids)
                if missing:
                    raise OutboxEntryNotFound(
                        f"{len(missing)} outbox entries not found: {', '.join(sorted(map(str, missing))[:10])}"
                    )
                rows = await uow.outbox_admin.redrive_ids(selection.ids)
                skipped = len(set(selection.ids)) - len(rows)
            else:
                rows = await uow.outbox_admin.redrive_matching(selection.where, self.limits.redrive_max_rows)
                if len(rows) > self.limits.redrive_max_rows:
                    raise RedriveLimitExceeded(
                        f"the filter matches more than {self.limits.redrive_max_rows} rows; narrow it "
                        f"(customer, time range) and re-drive in parts"
                    )
                skipped = 0
            await uow.audit.add(_audit_entry(request, rows, actor), now)
            await uow.commit()
        by_status = Tally(row.previous_status for row in rows)
        for status, count in by_status.items():
            self.metrics.redriven_rows.labels(status).inc(count)
        self.metrics.redrives.inc()
        log.info(
            "outbox_redriven",
            actor=actor.actor_id,
            rows=len(rows),
            skipped=skipped,
            by_status=dict(by_status),
            request=request,
        )
        return RedriveResult(redriven=len(rows), skipped=skipped, ids=[str(row.id) for row in rows])


def _check_limit(limit: int, limits: OutboxAdminLimits) -> None:
    if not 1 <= limit <= limits.max_page_size:
        raise InvalidOutboxFilter(f"limit must be between 1 and {limits.max_page_size}")


def _check_range(where: OutboxFilter) -> None:
    if where.created_from and where.created_to and where.created_from >= where.created_to:
        raise InvalidOutboxFilter("'from' must be earlier than 'to'")


def _validated(selection: RedriveSelection, limits: OutboxAdminLimits) -> dict[str, Any]:
    """Check the selection; return its description for the audit log."""
    if selection.ids and selection.where is not None:
        raise InvalidOutboxFilter("give either ids or a filter, not both")
    if selection.where is None:
        if not selection.ids:
            raise InvalidOutboxFilter("give ids or a filter")
        if len(selection.ids) > limits.redrive_max_rows:
            raise RedriveLimitExceeded(f"at most {limits.redrive_max_rows} ids per re-drive")
        return {"ids": [str(i) for i in selection.ids]}
    where = selection.where
    if where.status not in (OutboxStatus.FAILED, OutboxStatus.PUBLISHED):
        raise InvalidOutboxFilter("a re-drive filter needs status 'failed' or 'published'")
    _check_range(where)
    return {"filter": _describe(where)}


def _describe(where: OutboxFilter) -> dict[str, Any]:
    described: dict[str, Any] = {"status": where.status.value if where.status else None}
    if where.aggregate_id is not None:
        described["customerId"] = where.aggregate_id
    for key, value in (("from", where.created_from), ("to", where.created_to)):
        if value is not None:
            described[key] = value.isoformat()
    return described


def _audit_entry(request: dict[str, Any], rows: Sequence[RedrivenRow], actor: Actor) -> AuditEntry:
    customers = {row.aggregate_id for row in rows}
    return actor_entry(
        REDRIVEN_EVENT,
        "re-drive outbox entries",
        actor,
        customer_id=next(iter(customers)) if len(customers) == 1 else None,
        old_value={"byStatus": dict(Tally(row.previous_status for row in rows))},
        new_value={**request, "count": len(rows), "redrivenIds": [str(row.id) for row in rows]},
    )

"""The operation log (seed 004 customers_operation_log, seed 000 audit_logs): entries and queries.

Entries are only ever appended (the table's triggers refuse UPDATE, DELETE and TRUNCATE,
and no use case edits one). Personal data (contact data, tax number) never enters the log:
an entry says *that* a phone number changed, not what it was or became.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict, Unpack

from services.profile.domain.ledger import audit_values
from services.profile.domain.model import Customer
from services.profile.shared.pagination import Keyset, Page, int_key
from services.profile.shared.ports import AuditEntry, AuditFilter, StoredAuditEntry, UnitOfWorkFactory
from services.profile.shared.results import Actor


class AuditEvent(StrEnum):
    CUSTOMER_CREATED = "CUSTOMER_CREATED"
    CUSTOMER_UPDATED = "CUSTOMER_UPDATED"
    CUSTOMER_DELETED = "CUSTOMER_DELETED"
    CUSTOMER_RESTORED = "CUSTOMER_RESTORED"  # out of the recycle bin
    CUSTOMER_PURGED = "CUSTOMER_PURGED"
    CUSTOMER_RESTORED_FROM_BACKUP = "CUSTOMER_RESTORED_FROM_BACKUP"
    CUSTOMER_ROLLED_BACK = "CUSTOMER_ROLLED_BACK"  # to the content of an earlier version
    APPLICATION_SUBMITTED = "APPLICATION_SUBMITTED"
    APPLICATION_APPROVED = "APPLICATION_APPROVED"
    APPLICATION_REJECTED = "APPLICATION_REJECTED"
    APPLICATION_REAPPLIED = "APPLICATION_REAPPLIED"
    PROFILE_UPDATED = "PROFILE_UPDATED"
    UPDATE_FAILED = "UPDATE_FAILED"
    UPDATE_REFUSED = "UPDATE_REFUSED"  # INVALID_STATUS: an update of an application not approved (notifyAdmin)
    BACKUP_CREATED = "BACKUP_CREATED"
    BACKUP_EXPIRED = "BACKUP_EXPIRED"
    BACKUP_RESTORED = "BACKUP_RESTORED"


class EntryTarget(TypedDict, total=False):
    """What an entry is about, besides who did it."""

    customer_id: str | None
    application_id: str | None
    old_value: Mapping[str, Any] | None
    new_value: Mapping[str, Any] | None


def actor_entry(event: str, operation: str, actor: Actor, **target: Unpack[EntryTarget]) -> AuditEntry:
    """An entry of ``event`` (an ``AuditEvent``, or another service's own) by ``actor``, with where it came from."""
    return AuditEntry(
        event_type=str(event),
        actor_id=actor.actor_id,
        operation=operation[:100],
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        trace_id=actor.trace_id,
        **target,
    )


def customer_entry(
    event: AuditEvent,
    operation: str,
    actor: Actor,
    *,
    before: Customer | None,
    after: Customer,
    changed: tuple[str, ...],
    application_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """A profile change: old and new values of the changed non-personal fields, names of the others."""
    old, new = audit_values(before, after, changed)
    return actor_entry(
        event,
        operation,
        actor,
        customer_id=after.customer_id,
        application_id=application_id,
        old_value=old or None,
        new_value={**new, **(extra or {})},
    )


@dataclass(frozen=True)
class AuditLogService:
    uow_factory: UnitOfWorkFactory

    async def page(self, filters: AuditFilter, cursor: str | None, limit: int | None) -> Page[StoredAuditEntry]:
        keyset = Keyset(int_key, cursor, limit, "audit", filters)
        async with self.uow_factory() as uow:
            rows = await uow.audit.list_page(filters, keyset.after, keyset.fetch)
        return keyset.page(rows, lambda row: [row.id])

"""Use cases on customer profiles: create, read, list, edit, recycle bin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from services.profile.domain.ledger import (
    ProfileChanges,
    ProfileEdit,
    changed_fields,
    live,
    plan_edit,
    plan_soft_delete,
    plan_undelete,
    validate_profile,
)
from services.profile.domain.model import (
    AccountType,
    ApplicationOrigin,
    ChangeKind,
    Customer,
    CustomerDetails,
    CustomerStatus,
    direct_name_change,
)
from services.profile.name_changes.records import new_application_id, record_name_changes
from services.profile.shared.audit import AuditEvent, customer_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.pagination import Keyset, Page, time_key
from services.profile.shared.ports import CustomerFilter, HistoryEntry, ProfileUnitOfWork, UnitOfWorkFactory
from services.profile.shared.results import Actor

MAX_HISTORY = 500


@dataclass(frozen=True)
class NewCustomer(CustomerDetails):
    customer_id: str
    customer_name: str
    account_type: AccountType
    customer_code: str | None = None  # None: the customer id


@dataclass(frozen=True)
class CustomerService:
    uow_factory: UnitOfWorkFactory
    metrics: LedgerMetrics | None = None
    clock: Clock = utc_now

    async def create(self, new: NewCustomer, actor: Actor) -> Customer:
        """Version 1 (or above a purged customer's last), created and updated by the token's subject."""
        now = self.clock()
        customer = Customer(
            **{**asdict(new), "customer_code": new.customer_code or new.customer_id},
            status=CustomerStatus.ACTIVE,
            version=1,
            created_at=now,
            updated_at=now,
            created_by=actor.actor_id,
            updated_by=actor.actor_id,
            change_kind=ChangeKind.CREATE,
        )
        validate_profile(customer)
        async with self.uow_factory() as uow:
            # A purged customer's id may be used again: its versions continue above the old ones,
            # so external systems never take the new customer's changes for stale ones.
            purged = await uow.customers.purged_versions([customer.customer_id])
            if customer.customer_id in purged:
                customer = replace(customer, version=purged[customer.customer_id] + 1)
            await uow.customers.add(customer)
            await uow.customers.forget_purged([customer.customer_id])
            await uow.audit.add(
                customer_entry(
                    AuditEvent.CUSTOMER_CREATED,
                    "create customer",
                    actor,
                    before=None,
                    after=customer,
                    changed=changed_fields(None, customer),
                ),
                now,
            )
            await uow.commit()
        self._count("created")
        return customer

    async def get(self, customer_id: str) -> Customer:
        async with self.uow_factory() as uow:
            customer = await uow.customers.get(customer_id)
        return live(customer, customer_id)

    async def page(self, filters: CustomerFilter, cursor: str | None, limit: int | None) -> Page[Customer]:
        """Live customers, oldest first; a stable cursor over (created_at, customer_id)."""
        keyset = Keyset(time_key, cursor, limit, "customers", filters)
        async with self.uow_factory() as uow:
            rows = await uow.customers.list_live(filters, keyset.after, keyset.fetch)
        return keyset.page(rows, lambda c: [c.created_at.isoformat(), c.customer_id])

    async def recycle_bin(self, cursor: str | None, limit: int | None) -> Page[Customer]:
        """Deleted customers, most recently deleted first."""
        keyset = Keyset(time_key, cursor, limit, "recycle-bin")
        async with self.uow_factory() as uow:
            rows = await uow.customers.list_deleted(keyset.after, keyset.fetch)
        return keyset.page(rows, lambda c: [c.deleted_at.isoformat() if c.deleted_at else "", c.customer_id])

    async def update(
        self,
        customer_id: str,
        changes: ProfileChanges,
        expected_version: int,
        actor: Actor,
        change_reason: str | None = None,
    ) -> Customer:
        """An edit under ``If-Match``; a new name takes the same path as an approved application."""
        now = self.clock()
        async with self.uow_factory() as uow:
            current = await uow.customers.get(customer_id, for_update=True)
            edit = plan_edit(current, customer_id, changes, expected_version, now, by=actor.actor_id)
            if edit.is_noop:
                return edit.after
            await uow.customers.save(edit.after)
            application_id = await record_direct_name_change(
                uow, edit, actor, ApplicationOrigin.PROFILE_EDIT, change_reason or "profile edited"
            )
            await uow.audit.add(
                customer_entry(
                    AuditEvent.CUSTOMER_UPDATED,
                    "update customer",
                    actor,
                    before=edit.before,
                    after=edit.after,
                    changed=edit.changed,
                    application_id=application_id,
                ),
                now,
            )
            await uow.commit()
        self._count("updated")
        return edit.after

    async def delete(self, customer_id: str, expected_version: int | None, actor: Actor) -> Customer:
        """Into the recycle bin (soft delete); ``expected_version`` from an optional ``If-Match``."""
        now = self.clock()
        async with self.uow_factory() as uow:
            current = await uow.customers.get(customer_id, for_update=True)
            edit = plan_soft_delete(current, customer_id, expected_version, now, by=actor.actor_id)
            await self._save(uow, edit, AuditEvent.CUSTOMER_DELETED, "move customer to recycle bin", actor)
        self._count("deleted")
        return edit.after

    async def restore(self, customer_id: str, actor: Actor) -> Customer:
        """Out of the recycle bin, as it was (with a new version)."""
        now = self.clock()
        async with self.uow_factory() as uow:
            edit = plan_undelete(
                await uow.customers.get(customer_id, for_update=True), customer_id, now, by=actor.actor_id
            )
            await self._save(uow, edit, AuditEvent.CUSTOMER_RESTORED, "restore customer from recycle bin", actor)
        self._count("restored")
        return edit.after

    async def name_history(self, customer_id: str, limit: int = MAX_HISTORY) -> Sequence[HistoryEntry]:
        async with self.uow_factory() as uow:
            live(await uow.customers.get(customer_id), customer_id)
            return await uow.history.list_for_customer(customer_id, min(limit, MAX_HISTORY))

    async def _save(
        self, uow: ProfileUnitOfWork, edit: ProfileEdit, event: AuditEvent, operation: str, actor: Actor
    ) -> None:
        await uow.customers.save(edit.after)
        await uow.audit.add(
            customer_entry(event, operation, actor, before=edit.before, after=edit.after, changed=edit.changed),
            edit.after.updated_at,
        )
        await uow.commit()

    def _count(self, operation: str) -> None:
        if self.metrics is not None:
            self.metrics.customer_changes.labels(operation).inc()


async def record_direct_name_change(
    uow: ProfileUnitOfWork, edit: ProfileEdit, actor: Actor, origin: ApplicationOrigin, reason: str
) -> str | None:
    """History, a completed application (of ``origin``) and the outbox event of a change that renames.

    Every rename takes this path, whatever made it (an edit, a rollback): external systems get
    the new name with the new profile version. None when the name did not change.
    """
    if not edit.name_changed:
        return None
    change = direct_name_change(
        new_application_id(),
        origin,
        before=edit.before,
        after=edit.after,
        reason=reason,
        operator_id=actor.actor_id,
        now=edit.after.updated_at,
    )
    await record_name_changes(uow, [change])
    return change.application.application_id

"""Use cases on a customer's versions: list them, read one, compare two, roll back to one.

The database keeps the whole record at every version (a trigger on ``customer_profiles``,
migration profile_0005), so these only read ``customer_versions``; a rollback writes the
live row like any other change, and the trigger keeps its new version.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from services.profile.customers.service import record_direct_name_change
from services.profile.domain.errors import CustomerCodeExists, ProfileNotFound, VersionNotFound
from services.profile.domain.ledger import TRACKED_FIELDS, changed_fields
from services.profile.domain.lookup import found
from services.profile.domain.model import ApplicationOrigin, Customer
from services.profile.domain.versions import MAX_VERSION, FieldDifference, differences, plan_rollback
from services.profile.shared.audit import AuditEvent, customer_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.pagination import Keyset, Page, int_key
from services.profile.shared.ports import ProfileUnitOfWork, UnitOfWorkFactory
from services.profile.shared.results import Actor

_CODE = TRACKED_FIELDS["customer_code"]


class VersionEntry(msgspec.Struct, frozen=True):
    """A kept version, and the fields it changed from the version kept before it (None: the first kept)."""

    state: Customer
    changed: tuple[str, ...] | None


class VersionComparison(msgspec.Struct, frozen=True):
    old: Customer
    new: Customer
    differences: list[FieldDifference]


class RollbackResult(msgspec.Struct, frozen=True):
    """What a rollback did (or, in a dry run, would do): ``customer`` is the record afterwards."""

    customer: Customer
    from_version: int
    to_version: int
    differences: list[FieldDifference]
    dry_run: bool
    application_id: str | None  # the name change's application, when the name changed

    @property
    def changed(self) -> bool:
        return bool(self.differences)


@dataclass(frozen=True)
class VersionService:
    uow_factory: UnitOfWorkFactory
    metrics: LedgerMetrics
    clock: Clock = utc_now

    async def page(self, customer_id: str, cursor: str | None, limit: int | None) -> Page[VersionEntry]:
        """Newest first; a customer in the recycle bin has its versions too, a purged one none."""
        keyset = Keyset(int_key, cursor, limit, "versions", customer_id)
        async with self.uow_factory() as uow:
            await _existing(uow, customer_id)
            rows = await uow.customers.versions_page(customer_id, keyset.after, keyset.fetch)
        page = keyset.page(rows, lambda row: [row.version])
        # Each version's changes are against the one kept before it: the extra row fetched for the last.
        entries = [
            VersionEntry(row, changed_fields(rows[i + 1], row) if i + 1 < len(rows) else None)
            for i, row in enumerate(page.items)
        ]
        return Page(items=entries, next_cursor=page.next_cursor)

    async def get(self, customer_id: str, version: int) -> VersionEntry:
        """One kept version, with what it changed from the one kept before it."""
        async with self.uow_factory() as uow:
            await _existing(uow, customer_id)
            # The int column's largest version has none above it to page below.
            rows = await uow.customers.versions_page(customer_id, version + 1 if version < MAX_VERSION else None, 2)
        if not rows or rows[0].version != version:
            raise VersionNotFound(f"customer {customer_id} has no version {version} kept")
        return VersionEntry(rows[0], changed_fields(rows[1], rows[0]) if len(rows) > 1 else None)

    async def compare(self, customer_id: str, old_version: int, new_version: int | None) -> VersionComparison:
        """Field by field from ``old_version`` to ``new_version`` (None: the current version)."""
        async with self.uow_factory() as uow:
            current = await _existing(uow, customer_id)
            target = current.version if new_version is None else new_version
            kept = await uow.customers.versions(customer_id, [old_version, target])
        old, new = _kept(kept, customer_id, old_version), _kept(kept, customer_id, target)
        return VersionComparison(old, new, differences(old, new))

    async def rollback(
        self,
        customer_id: str,
        to_version: int,
        expected_version: int,
        actor: Actor,
        *,
        dry_run: bool = False,
        reason: str | None = None,
    ) -> RollbackResult:
        """A new version whose content equals ``to_version`` (recycle-bin state included).

        In one transaction with its operation-log entry; a name that changes takes the path of
        every rename (history, a completed application of origin ``version_rollback``, the outbox
        event). A dry run checks the same (412, 404, 409, 422) and writes nothing.
        """
        now = self.clock()
        async with self.uow_factory() as uow:
            current = found(
                await uow.customers.get(customer_id, for_update=not dry_run),
                ProfileNotFound(f"customer profile {customer_id} not found"),
            )
            target = await _version(uow, customer_id, to_version)
            edit = plan_rollback(current, customer_id, target, expected_version, now, by=actor.actor_id)
            changes = differences(edit.before, edit.after)
            if _CODE in edit.changed:
                holder = (await uow.customers.code_holders([edit.after.customer_code])).get(edit.after.customer_code)
                if holder is not None and holder != customer_id:
                    raise CustomerCodeExists(
                        f"version {to_version} has customer code {edit.after.customer_code}, "
                        f"which customer {holder} holds now"
                    )
            if dry_run or edit.is_noop:
                return RollbackResult(edit.after, current.version, to_version, changes, dry_run, None)
            await uow.customers.save(edit.after)
            application_id = await record_direct_name_change(
                uow, edit, actor, ApplicationOrigin.VERSION_ROLLBACK, reason or f"rolled back to version {to_version}"
            )
            await uow.audit.add(
                customer_entry(
                    AuditEvent.CUSTOMER_ROLLED_BACK,
                    f"roll back to version {to_version}",
                    actor,
                    before=edit.before,
                    after=edit.after,
                    changed=edit.changed,
                    application_id=application_id,
                    extra={"toVersion": to_version},
                ),
                now,
            )
            await uow.commit()
        self.metrics.customer_changes.labels("rolled_back").inc()
        return RollbackResult(edit.after, current.version, to_version, changes, dry_run, application_id)


async def _existing(uow: ProfileUnitOfWork, customer_id: str) -> Customer:
    """The customer's current row, live or in the recycle bin."""
    return found(await uow.customers.get(customer_id), ProfileNotFound(f"customer profile {customer_id} not found"))


async def _version(uow: ProfileUnitOfWork, customer_id: str, version: int) -> Customer:
    return _kept(await uow.customers.versions(customer_id, [version]), customer_id, version)


def _kept(kept: dict[int, Customer], customer_id: str, version: int) -> Customer:
    return found(kept.get(version), VersionNotFound(f"customer {customer_id} has no version {version} kept"))

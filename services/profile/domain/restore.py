"""Restoring a customer to a backup point (seed 004 "备份恢复"), decided per customer.

A restore is a change like any other: the profile moves *forward* to a new version
whose content equals the snapshot. Versions never go back, so every external system,
which ignores versions it has already passed, accepts the restored name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.profile.domain.ledger import changed_fields
from services.profile.domain.model import Customer


class BackupKind(StrEnum):
    MANUAL = "manual"  # taken on request (POST /v1/backups)
    SCHEDULED = "scheduled"  # the daily one taken by the maintenance task


class RestoreAction(StrEnum):
    UPDATE = "update"  # fields differ, recycle-bin state as in the backup
    UNDELETE = "undelete"  # deleted since the backup: back out of the recycle bin
    RECREATE = "recreate"  # purged since the backup: the row is written again
    MOVE_TO_RECYCLE_BIN = "move_to_recycle_bin"  # deleted in the backup, or created after it


@dataclass(frozen=True)
class RestoreStep:
    action: RestoreAction
    before: Customer | None
    after: Customer
    changed: tuple[str, ...]

    @property
    def customer_id(self) -> str:
        return self.after.customer_id

    @property
    def name_changed(self) -> bool:
        """A name event is due when the name differs, or the row is written again after a purge."""
        return self.before is None or self.before.customer_name != self.after.customer_name

    @property
    def old_name(self) -> str:
        return (self.before or self.after).customer_name


def same_content(current: Customer, snapshot: Customer) -> bool:
    return not changed_fields(current, snapshot)


def plan_customer_restore(
    current: Customer | None, snapshot: Customer, purged_version: int | None, now: datetime
) -> RestoreStep | None:
    """The step that makes ``current`` equal to ``snapshot``; None when it already is.

    Compared: name, contact data, account type, status and whether the customer is in
    the recycle bin (the deletion instant itself is not: a customer moved back into the
    bin starts its retention period now).
    """
    if current is None:
        floor = max(snapshot.version, purged_version or 0)
        after = replace(snapshot, version=floor + 1, updated_at=now, deleted_at=now if snapshot.is_deleted else None)
        return RestoreStep(RestoreAction.RECREATE, None, after, changed_fields(None, after))
    if same_content(current, snapshot):
        return None
    after = replace(
        current,
        customer_name=snapshot.customer_name,
        contact_phone=snapshot.contact_phone,
        contact_email=snapshot.contact_email,
        contact_address=snapshot.contact_address,
        account_type=snapshot.account_type,
        status=snapshot.status,
        deleted_at=_deleted_at(current, snapshot, now),
        version=current.version + 1,
        updated_at=now,
    )
    if current.is_deleted and not snapshot.is_deleted:
        action = RestoreAction.UNDELETE
    elif snapshot.is_deleted and not current.is_deleted:
        action = RestoreAction.MOVE_TO_RECYCLE_BIN
    else:
        action = RestoreAction.UPDATE
    return RestoreStep(action, current, after, changed_fields(current, after))


def plan_removal(current: Customer, now: datetime) -> RestoreStep | None:
    """A customer created after the backup point: a whole-ledger restore moves it to the recycle bin.

    Not purged: the recycle bin keeps it recoverable for the retention period.
    """
    if current.is_deleted:
        return None
    after = replace(current, deleted_at=now, version=current.version + 1, updated_at=now)
    return RestoreStep(RestoreAction.MOVE_TO_RECYCLE_BIN, current, after, changed_fields(current, after))


def _deleted_at(current: Customer, snapshot: Customer, now: datetime) -> datetime | None:
    if not snapshot.is_deleted:
        return None
    return current.deleted_at if current.is_deleted else now

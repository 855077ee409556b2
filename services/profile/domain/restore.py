"""Restoring a customer to a backup point (seed 004 "备份恢复"), decided per customer.

A restore is a change like any other: the profile moves *forward* to a new version
whose content equals the snapshot. Versions never go back, so every external system,
which ignores versions it has already passed, accepts the restored name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.profile.domain.ledger import changed_fields, deleted_at_like, next_version, with_content_of
from services.profile.domain.model import ChangeKind, Customer


class BackupKind(StrEnum):
    MANUAL = "manual"  # taken on request (POST /v1/backups)
    SCHEDULED = "scheduled"  # the daily one taken by the maintenance task
    PRE_RESTORE = "pre_restore"  # taken by itself before every whole-ledger restore
    PRE_PURGE = "pre_purge"  # taken by itself before a purge of the recycle bin removes anyone


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
    current: Customer | None, snapshot: Customer, purged_version: int | None, now: datetime, *, by: str
) -> RestoreStep | None:
    """The step that makes ``current`` equal to ``snapshot``; None when it already is.

    Compared: every field of the record (name, code, contact data, credit limit, ...) and
    whether the customer is in the recycle bin (the deletion instant itself is not: a
    customer moved back into the bin starts its retention period now). Who created the
    customer, and when, stays as it is.
    """
    if current is None:
        floor = max(snapshot.version, purged_version or 0)
        after = replace(
            snapshot,
            version=floor + 1,
            updated_at=now,
            deleted_at=now if snapshot.is_deleted else None,
            updated_by=by,
            change_kind=ChangeKind.BACKUP_RESTORE,
        )
        return RestoreStep(RestoreAction.RECREATE, None, after, changed_fields(None, after))
    if same_content(current, snapshot):
        return None
    restored = replace(with_content_of(current, snapshot), deleted_at=deleted_at_like(current, snapshot, now))
    after = next_version(current, restored, ChangeKind.BACKUP_RESTORE, by, now)
    if current.is_deleted and not snapshot.is_deleted:
        action = RestoreAction.UNDELETE
    elif snapshot.is_deleted and not current.is_deleted:
        action = RestoreAction.MOVE_TO_RECYCLE_BIN
    else:
        action = RestoreAction.UPDATE
    return RestoreStep(action, current, after, changed_fields(current, after))


def plan_removal(current: Customer, now: datetime, *, by: str) -> RestoreStep | None:
    """A customer created after the backup point: a whole-ledger restore moves it to the recycle bin.

    Not purged: the recycle bin keeps it recoverable for the retention period.
    """
    if current.is_deleted:
        return None
    after = next_version(current, replace(current, deleted_at=now), ChangeKind.BACKUP_RESTORE, by, now)
    return RestoreStep(RestoreAction.MOVE_TO_RECYCLE_BIN, current, after, changed_fields(current, after))

"""Every version of a customer (seed 004 数据冲突处理: 版本控制, "keep several versions, support rollback").

Each change stores the whole record at its new version. Two versions compare field by
field; a rollback moves the customer *forward* to a new version whose content equals an
earlier one (recycle-bin state included), like a restore from a backup point: versions
never go back, so external systems, which ignore versions they have passed, accept it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.profile.domain.errors import ProfileNotFound
from services.profile.domain.ledger import (
    DELETED,
    SENSITIVE_FIELDS,
    TRACKED_FIELDS,
    ProfileEdit,
    changed_fields,
    check_version,
    deleted_at_like,
    next_version,
    plain,
    validate_profile,
    with_content_of,
)
from services.profile.domain.model import ChangeKind, Customer

MAX_VERSION = 2**31 - 1  # the version columns are PostgreSQL integers
_ATTRIBUTES = {label: attr for attr, label in TRACKED_FIELDS.items()}


@dataclass(frozen=True)
class FieldDifference:
    """One field that differs: its wire name, whether it is personal data, and both values (JSON-ready)."""

    field: str
    personal: bool
    old: object
    new: object


def differences(old: Customer, new: Customer) -> list[FieldDifference]:
    """Field by field, in the order of ``changedFields``; ``deleted`` when the recycle-bin state differs."""
    found: list[FieldDifference] = []
    for label in changed_fields(old, new):
        if label == DELETED:
            found.append(FieldDifference(DELETED, personal=False, old=old.is_deleted, new=new.is_deleted))
            continue
        attr = _ATTRIBUTES[label]
        personal = attr in SENSITIVE_FIELDS
        found.append(FieldDifference(label, personal, plain(getattr(old, attr)), plain(getattr(new, attr))))
    return found


def plan_rollback(
    current: Customer | None,
    customer_id: str,
    target: Customer,
    expected_version: int,
    now: datetime,
    *,
    by: str,
) -> ProfileEdit:
    """The new version whose content equals ``target`` (an earlier version); a no-op when it already does.

    ``If-Match`` must name the current version (a concurrent change makes it 412). The
    rolled-back record is validated again: a value valid then but not under today's rules
    is refused (422) rather than written.
    """
    if current is None:
        raise ProfileNotFound(f"customer profile {customer_id} not found")
    check_version(current, expected_version)
    rolled = replace(with_content_of(current, target), deleted_at=deleted_at_like(current, target, now))
    changed = changed_fields(current, rolled)
    if not changed:
        return ProfileEdit(current, current, ())
    validate_profile(rolled)
    return ProfileEdit(current, next_version(current, rolled, ChangeKind.ROLLBACK, by, now), changed)

"""Ledger rules on a customer profile: edits under optimistic locking, the recycle bin, purge.

Every change that alters a profile bumps its ``version`` (the ETag), so a caller holding
an older version can never overwrite a newer state (seed 004: optimistic locking against concurrent edits).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from services.profile.domain.errors import NotInRecycleBin, PreconditionFailed, ProfileNotFound
from services.profile.domain.model import AccountType, ChangeKind, Customer, CustomerStatus
from services.profile.domain.validation import contact_errors, name_errors, raise_if_any, record_errors

# The content of a customer record: attribute -> its wire name; the order is the order of
# ``changedFields``. Everything else on a row (version, timestamps, who, change kind) is
# about a version, not its content; the recycle-bin state is compared as ``deleted``.
TRACKED_FIELDS: dict[str, str] = {
    "customer_name": "customerName",
    "contact_phone": "contactPhone",
    "contact_email": "contactEmail",
    "contact_address": "contactAddress",
    "account_type": "accountType",
    "status": "status",
    "customer_code": "customerCode",
    "customer_type": "customerType",
    "contact_person": "contactPerson",
    "company": "company",
    "industry": "industry",
    "region": "region",
    "credit_limit": "creditLimit",
    "sales_person": "salesPerson",
    "tax_number": "taxNumber",
    "remark": "remark",
}
# Personal data, sealed at rest: the operation log records that these changed, never their values.
SENSITIVE_FIELDS = frozenset({"contact_phone", "contact_email", "contact_address", "tax_number"})
SENSITIVE_LABELS = frozenset(TRACKED_FIELDS[attr] for attr in SENSITIVE_FIELDS)
DELETED = "deleted"


class Unchanged(Enum):
    """A field the caller did not send (distinct from ``None``, which clears a contact field)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class ProfileChanges:
    customer_name: str | Unchanged = UNCHANGED
    contact_phone: str | Unchanged | None = UNCHANGED
    contact_email: str | Unchanged | None = UNCHANGED
    contact_address: str | Unchanged | None = UNCHANGED
    account_type: AccountType | Unchanged = UNCHANGED
    status: CustomerStatus | Unchanged = UNCHANGED
    customer_code: str | Unchanged = UNCHANGED
    customer_type: str | Unchanged = UNCHANGED
    contact_person: str | Unchanged | None = UNCHANGED
    company: str | Unchanged | None = UNCHANGED
    industry: str | Unchanged | None = UNCHANGED
    region: str | Unchanged | None = UNCHANGED
    credit_limit: Decimal | Unchanged = UNCHANGED
    sales_person: str | Unchanged | None = UNCHANGED
    tax_number: str | Unchanged | None = UNCHANGED
    remark: str | Unchanged | None = UNCHANGED

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not UNCHANGED}


@dataclass(frozen=True)
class ProfileEdit:
    """One decided change of a profile: the state before and after, and what differs (wire names)."""

    before: Customer
    after: Customer
    changed: tuple[str, ...]

    @property
    def is_noop(self) -> bool:
        return not self.changed

    @property
    def name_changed(self) -> bool:
        return self.before.customer_name != self.after.customer_name


def changed_fields(before: Customer | None, after: Customer) -> tuple[str, ...]:
    """Wire names of the tracked fields that differ, plus ``deleted`` when the recycle-bin state does."""
    if before is None:
        return (*TRACKED_FIELDS.values(), DELETED) if after.is_deleted else tuple(TRACKED_FIELDS.values())
    changed = tuple(label for attr, label in TRACKED_FIELDS.items() if getattr(before, attr) != getattr(after, attr))
    return (*changed, DELETED) if before.is_deleted != after.is_deleted else changed


def with_content_of(current: Customer, source: Customer) -> Customer:
    """``current`` with every content field of ``source`` (not its recycle-bin state nor version data)."""
    return replace(current, **{attr: getattr(source, attr) for attr in TRACKED_FIELDS})


def deleted_at_like(current: Customer, target: Customer, now: datetime) -> datetime | None:
    """The recycle-bin state of ``target`` on ``current``: one moved into the bin starts its retention now."""
    if not target.is_deleted:
        return None
    return current.deleted_at if current.is_deleted else now


def validate_profile(customer: Customer) -> None:
    raise_if_any(
        [
            *name_errors(customer.customer_name),
            *contact_errors(customer.contact_phone, customer.contact_email, customer.contact_address),
            *record_errors(customer),
        ]
    )


def live(customer: Customer | None, customer_id: str) -> Customer:
    if customer is None or customer.is_deleted:
        raise ProfileNotFound(f"customer profile {customer_id} not found")
    return customer


def check_version(customer: Customer, expected_version: int | None) -> None:
    """``If-Match``: the caller must have seen the current version (None: unconditional)."""
    if expected_version is not None and expected_version != customer.version:
        raise PreconditionFailed(
            f"profile {customer.customer_id} is at version {customer.version}, If-Match names {expected_version}",
            current_version=customer.version,
        )


def next_version(current: Customer, after: Customer, kind: ChangeKind, by: str, now: datetime) -> Customer:
    """``after`` as the version following ``current``: made by ``by`` (a token subject), now."""
    return replace(after, version=current.version + 1, updated_at=now, updated_by=by, change_kind=kind)


def plan_edit(
    customer: Customer | None,
    customer_id: str,
    changes: ProfileChanges,
    expected_version: int,
    now: datetime,
    *,
    by: str,
) -> ProfileEdit:
    current = live(customer, customer_id)
    check_version(current, expected_version)
    edited = replace(current, **changes.given())
    validate_profile(edited)
    changed = changed_fields(current, edited)
    if not changed:
        return ProfileEdit(current, current, ())
    return ProfileEdit(current, next_version(current, edited, ChangeKind.EDIT, by, now), changed)


def plan_soft_delete(
    customer: Customer | None, customer_id: str, expected_version: int | None, now: datetime, *, by: str
) -> ProfileEdit:
    """Into the recycle bin: the row stays, hidden, until restored or purged."""
    current = live(customer, customer_id)
    check_version(current, expected_version)
    after = next_version(current, replace(current, deleted_at=now), ChangeKind.DELETE, by, now)
    return ProfileEdit(current, after, (DELETED,))


def plan_undelete(customer: Customer | None, customer_id: str, now: datetime, *, by: str) -> ProfileEdit:
    if customer is None:
        raise ProfileNotFound(f"customer profile {customer_id} not found")
    if not customer.is_deleted:
        raise NotInRecycleBin(f"customer {customer_id} is not in the recycle bin")
    after = next_version(customer, replace(customer, deleted_at=None), ChangeKind.UNDELETE, by, now)
    return ProfileEdit(customer, after, (DELETED,))


def purge_cutoff(now: datetime, retention: timedelta) -> datetime:
    """Customers deleted before this instant are due for purging."""
    return now - retention


def audit_values(
    before: Customer | None, after: Customer, changed: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Old and new values for the operation log: values of non-personal fields, names of personal ones."""
    labels = {label: attr for attr, label in TRACKED_FIELDS.items()}
    old: dict[str, Any] = {} if before is None else {"version": before.version}
    new: dict[str, Any] = {"version": after.version, "changedFields": list(changed)}
    for label in changed:
        attr = labels.get(label)
        if attr is None or attr in SENSITIVE_FIELDS:
            continue
        if before is not None:
            old[label] = plain(getattr(before, attr))
        new[label] = plain(getattr(after, attr))
    if DELETED in changed:
        old[DELETED] = before.is_deleted if before is not None else False
        new[DELETED] = after.is_deleted
    return old, new


def plain(value: object) -> object:
    """A field's value as JSON carries it: enums by value, the credit limit as a string with two places."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return value

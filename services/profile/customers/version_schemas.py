"""HTTP bodies of a customer's versions: a version, a page of them, a difference, a rollback.

Personal data (contact data, tax number) of past versions is shown only to callers who may
change the customer (operator, admin): others see that it changed, not its values, and a
version lists the fields withheld from them in ``redactedFields``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from services.profile.customers.versions import RollbackResult, VersionComparison, VersionEntry
from services.profile.domain.ledger import SENSITIVE_LABELS, TRACKED_FIELDS
from services.profile.domain.versions import MAX_VERSION, FieldDifference
from services.profile.shared.web.schemas import CustomerResponse, Reason, Request, customer_fields

VersionNumber = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]
# Personal fields, in the order of the record, with their attribute names.
_PERSONAL = tuple((attr, label) for attr, label in TRACKED_FIELDS.items() if label in SENSITIVE_LABELS)
FieldValue = str | bool | None


class VersionResponse(CustomerResponse, frozen=True):
    """The whole record at one version; ``updatedAt``/``updatedBy`` are when and by whom it was made."""

    deleted_at: datetime | None  # in the recycle bin at this version
    change_kind: str  # baseline, create, edit, name_change, delete, undelete, rollback, backup_restore
    changed_fields: list[str] | None  # what differs from the version kept before it (null: the first kept)
    redacted_fields: list[str]  # personal fields withheld from this caller (their values are null here)

    @classmethod
    def of_entry(cls, entry: VersionEntry, *, personal: bool) -> VersionResponse:
        state = entry.state
        fields = customer_fields(state)
        redacted: list[str] = []
        if not personal:
            for attr, label in _PERSONAL:
                fields[attr] = None
                redacted.append(label)
        return cls(
            **fields,
            deleted_at=state.deleted_at,
            change_kind=state.change_kind.value,
            changed_fields=None if entry.changed is None else list(entry.changed),
            redacted_fields=redacted,
        )


class VersionPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[VersionResponse]
    next_cursor: str | None


class FieldDifferenceResponse(msgspec.Struct, rename="camel", frozen=True):
    field: str  # wire name, or ``deleted`` for the recycle-bin state
    personal: bool
    redacted: bool  # personal data this caller may not read: ``old``/``new`` are null
    old: FieldValue
    new: FieldValue

    @classmethod
    def of(cls, difference: FieldDifference, *, personal: bool) -> FieldDifferenceResponse:
        hidden = difference.personal and not personal
        return cls(
            field=difference.field,
            personal=difference.personal,
            redacted=hidden,
            old=None if hidden else _value(difference.old),
            new=None if hidden else _value(difference.new),
        )


def _value(value: object) -> FieldValue:
    return value if value is None or isinstance(value, str | bool) else str(value)


class DifferenceResponse(msgspec.Struct, rename="camel", frozen=True):
    customer_id: str
    from_version: int
    to_version: int
    differences: list[FieldDifferenceResponse]

    @classmethod
    def of(cls, comparison: VersionComparison, *, personal: bool) -> DifferenceResponse:
        return cls(
            customer_id=comparison.new.customer_id,
            from_version=comparison.old.version,
            to_version=comparison.new.version,
            differences=[FieldDifferenceResponse.of(d, personal=personal) for d in comparison.differences],
        )


class RollbackRequest(Request, frozen=True):
    """Roll back to ``toVersion`` (with ``If-Match``: the current version); ``dryRun`` only reports the difference."""

    to_version: VersionNumber
    dry_run: bool = False
    # Recorded in the name history when the name changes (default: "rolled back to version N").
    reason: Reason | None = None


class RollbackResponse(msgspec.Struct, rename="camel", frozen=True):
    customer_id: str
    dry_run: bool
    from_version: int  # the current version the rollback was based on
    to_version: int  # the version whose content it takes
    version: int  # the current version afterwards (unchanged by a dry run or when nothing differs)
    changed: bool
    differences: list[FieldDifferenceResponse]  # from the current version to the rolled-back content
    application_id: str | None  # the name change's completed application, when the name changed
    customer: CustomerResponse | None  # the record afterwards; null in a dry run

    @classmethod
    def of(cls, result: RollbackResult) -> RollbackResponse:
        written = not result.dry_run and result.changed
        return cls(
            customer_id=result.customer.customer_id,
            dry_run=result.dry_run,
            from_version=result.from_version,
            to_version=result.to_version,
            version=result.customer.version if written else result.from_version,
            changed=result.changed,
            differences=[FieldDifferenceResponse.of(d, personal=True) for d in result.differences],
            application_id=result.application_id,
            customer=None if result.dry_run else CustomerResponse.of(result.customer),
        )

"""The profile domain: customers, name-change applications and their rules (no frameworks)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.profile.domain.errors import (
    ConcurrencyConflict,
    InvalidInput,
    InvalidStatus,
    ProfileNotFound,
)
from services.profile.domain.validation import field_error, name_errors, raise_if_any

SYSTEM_OPERATOR_ID = "system"
SYSTEM_OPERATOR_NAME = "Auto System"
DEFAULT_CUSTOMER_TYPE = "regular"
NO_CREDIT = Decimal("0.00")


FAILURE_DETAIL_MAX = 2000  # characters of an update failure kept with the application


class AccountType(StrEnum):
    RESIDENTIAL = "residential"
    COMMERCIAL = "commercial"
    INDUSTRIAL = "industrial"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


class ApplicationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    COMPLETED = "completed"
    UPDATE_FAILED = "update_failed"


class ApplicationOrigin(StrEnum):
    """Where a name change came from: a customer's application, or a direct edit / restore by staff."""

    APPLICATION = "application"
    PROFILE_EDIT = "profile_edit"
    BACKUP_RESTORE = "backup_restore"
    VERSION_ROLLBACK = "version_rollback"


class ChangeKind(StrEnum):
    """What made a version of a customer (kept with every version)."""

    BASELINE = "baseline"  # the state when versions began to be kept (migration profile_0005)
    CREATE = "create"
    EDIT = "edit"
    NAME_CHANGE = "name_change"  # an approved application
    DELETE = "delete"  # into the recycle bin
    UNDELETE = "undelete"  # out of the recycle bin
    ROLLBACK = "rollback"  # back to the content of an earlier version
    BACKUP_RESTORE = "backup_restore"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, kw_only=True)
class CustomerDetails:
    """The optional fields of a customer record, alike on a new customer and on every version."""

    contact_phone: str | None = None
    contact_email: str | None = None
    contact_address: str | None = None
    customer_type: str = DEFAULT_CUSTOMER_TYPE
    contact_person: str | None = None
    company: str | None = None
    industry: str | None = None
    region: str | None = None
    credit_limit: Decimal = NO_CREDIT
    sales_person: str | None = None
    tax_number: str | None = None
    remark: str | None = None


@dataclass(frozen=True)
class Customer(CustomerDetails):
    """Seed 004's customer record (``customers_backup_history``) at one version.

    Personal data (the contact phone, e-mail and address, the tax number) is stored sealed,
    never in plaintext. ``created_by``/``updated_by`` are token subjects, ``change_kind`` says
    what made this version. A customer without a code has its id as code.
    """

    customer_id: str
    customer_name: str
    account_type: AccountType
    status: CustomerStatus
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    customer_code: str = ""
    created_by: str | None = None
    updated_by: str | None = None
    change_kind: ChangeKind = ChangeKind.CREATE

    def __post_init__(self) -> None:
        if not self.customer_code:
            object.__setattr__(self, "customer_code", self.customer_id)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class NameChangeApplication:
    application_id: str
    customer_id: str
    old_name: str
    new_name: str
    reason: str
    status: ApplicationStatus
    profile_version: int
    created_at: datetime
    updated_at: datetime
    auditor_id: str | None = None
    audit_comment: str | None = None
    decided_at: datetime | None = None
    completed_at: datetime | None = None
    failure_code: str | None = None
    failure_detail: str | None = None
    origin: ApplicationOrigin = ApplicationOrigin.APPLICATION

    def decide(self, decision: Decision, auditor_id: str, comment: str | None, now: datetime) -> NameChangeApplication:
        """The audit decision; only a pending application can be decided."""
        if self.status is not ApplicationStatus.PENDING:
            raise InvalidStatus(
                f"application {self.application_id} is {self.status.value}, only pending can be decided",
                current_status=self.status.value,
            )
        status = ApplicationStatus.APPROVED if decision is Decision.APPROVED else ApplicationStatus.REJECTED
        return replace(
            self, status=status, auditor_id=auditor_id, audit_comment=comment, decided_at=now, updated_at=now
        )

    def completed(self, now: datetime) -> NameChangeApplication:
        return replace(
            self,
            status=ApplicationStatus.COMPLETED,
            completed_at=now,
            updated_at=now,
            failure_code=None,
            failure_detail=None,
        )

    def update_failed(self, code: str, detail: str, now: datetime) -> NameChangeApplication:
        """The update could not be applied and was rolled back: an operator re-applies it (seed 000 6.2)."""
        return replace(
            self,
            status=ApplicationStatus.UPDATE_FAILED,
            failure_code=code,
            failure_detail=detail[:FAILURE_DETAIL_MAX],
            updated_at=now,
        )

    def reapply(self, customer: Customer, now: datetime) -> NameChangeApplication:
        """Re-base a failed application on the profile as it is now, for a new audit decision.

        The auditor approved a change from the old name at the old version; after the
        profile moved on (the usual cause of ``update_failed``) that approval says nothing
        about the new state, so the application goes back to ``pending``.
        """
        if self.status is not ApplicationStatus.UPDATE_FAILED:
            raise InvalidStatus(
                f"application {self.application_id} is {self.status.value}, only update_failed can be re-applied",
                current_status=self.status.value,
            )
        if customer.is_deleted:
            raise ProfileNotFound(f"customer {customer.customer_id} is in the recycle bin")
        _require_new_name(customer, self.new_name)
        return replace(
            self,
            old_name=customer.customer_name,
            profile_version=customer.version,
            status=ApplicationStatus.PENDING,
            auditor_id=None,
            audit_comment=None,
            decided_at=None,
            failure_code=None,
            failure_detail=None,
            updated_at=now,
        )


@dataclass(frozen=True)
class NameChange:
    """Everything one approved name change writes, decided before any write."""

    application: NameChangeApplication
    customer: Customer
    new_version: int
    changed_at: datetime

    @property
    def customer_type(self) -> str:
        return self.customer.account_type.value


def new_application(
    application_id: str, customer: Customer, new_name: str, reason: str, now: datetime
) -> NameChangeApplication:
    """Submitting captures the current name and profile version (the optimistic-lock token)."""
    if customer.is_deleted:
        raise ProfileNotFound(f"customer {customer.customer_id} is in the recycle bin")
    raise_if_any(name_errors(new_name, "newName"), "invalid name-change application")
    _require_new_name(customer, new_name)
    return NameChangeApplication(
        application_id=application_id,
        customer_id=customer.customer_id,
        old_name=customer.customer_name,
        new_name=new_name,
        reason=reason,
        status=ApplicationStatus.PENDING,
        profile_version=customer.version,
        created_at=now,
        updated_at=now,
    )


def plan_name_change(application: NameChangeApplication, customer: Customer | None, now: datetime) -> NameChange:
    """Seed 000 5.2.1 steps 2-4: status, profile existence, optimistic version check."""
    if application.status not in (ApplicationStatus.APPROVED, ApplicationStatus.UPDATE_FAILED):
        raise InvalidStatus(
            f"application {application.application_id} is {application.status.value}, it must be approved",
            current_status=application.status.value,
        )
    if customer is None or customer.is_deleted:
        raise ProfileNotFound(f"customer profile {application.customer_id} not found")
    if customer.version != application.profile_version:
        raise ConcurrencyConflict(
            f"profile {customer.customer_id} is at version {customer.version}, "
            f"the application was made against version {application.profile_version}: "
            "repeating the update cannot succeed; re-apply the application (or file a new one) "
            "against the current version for a new decision",
            current_version=customer.version,
            expected_version=application.profile_version,
        )
    return NameChange(application=application, customer=customer, new_version=customer.version + 1, changed_at=now)


def direct_name_change(
    application_id: str,
    origin: ApplicationOrigin,
    *,
    before: Customer,
    after: Customer,
    reason: str,
    operator_id: str,
    now: datetime,
) -> NameChange:
    """A name change decided by staff (profile edit, restore): its application is approved on creation."""
    application = NameChangeApplication(
        application_id=application_id,
        customer_id=after.customer_id,
        old_name=before.customer_name,
        new_name=after.customer_name,
        reason=reason,
        status=ApplicationStatus.APPROVED,
        profile_version=before.version,
        created_at=now,
        updated_at=now,
        auditor_id=operator_id[:50],
        decided_at=now,
        origin=origin,
    )
    return NameChange(application=application, customer=before, new_version=after.version, changed_at=now)


def _require_new_name(customer: Customer, new_name: str) -> None:
    if new_name == customer.customer_name:
        raise InvalidInput(
            f"customer {customer.customer_id} is already named {new_name!r}",
            errors=[field_error("newName", "equals the current name")],
        )

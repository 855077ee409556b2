"""HTTP bodies of the ledger: profile edits, recycle bin, pages, backups, restores, audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from services.profile.domain.ledger import UNCHANGED, ProfileChanges
from services.profile.domain.model import AccountType, Customer, CustomerStatus
from services.profile.entrypoints.http.schemas import (
    Address,
    ApplicationResponse,
    Company,
    ContactPerson,
    CreditLimit,
    CustomerCode,
    CustomerId,
    CustomerResponse,
    CustomerType,
    Email,
    Industry,
    PersonName,
    Phone,
    Reason,
    Region,
    Remark,
    Request,
    SalesPerson,
    TaxNumber,
    credit,
)
from services.profile.service_layer.ports import BackupPoint, StoredAuditEntry

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class UpdateCustomerRequest(Request, frozen=True):
    """Only the fields sent change; ``null`` clears an optional field (contact data, company, ...)."""

    customer_name: PersonName | UnsetType = UNSET
    contact_phone: Phone | UnsetType | None = UNSET
    contact_email: Email | UnsetType | None = UNSET
    contact_address: Address | UnsetType | None = UNSET
    account_type: AccountType | UnsetType = UNSET
    status: CustomerStatus | UnsetType = UNSET
    customer_code: CustomerCode | UnsetType = UNSET
    customer_type: CustomerType | UnsetType = UNSET
    contact_person: ContactPerson | UnsetType | None = UNSET
    company: Company | UnsetType | None = UNSET
    industry: Industry | UnsetType | None = UNSET
    region: Region | UnsetType | None = UNSET
    credit_limit: CreditLimit | UnsetType = UNSET
    sales_person: SalesPerson | UnsetType | None = UNSET
    tax_number: TaxNumber | UnsetType | None = UNSET
    remark: Remark | UnsetType | None = UNSET
    # Recorded in the name history when the name changes.
    change_reason: Reason | UnsetType = UNSET

    def changes(self) -> ProfileChanges:
        def given(value: Any) -> Any:
            return UNCHANGED if value is UNSET else value

        return ProfileChanges(
            customer_name=given(self.customer_name),
            contact_phone=given(self.contact_phone),
            contact_email=given(self.contact_email),
            contact_address=given(self.contact_address),
            account_type=given(self.account_type),
            status=given(self.status),
            customer_code=given(self.customer_code),
            customer_type=given(self.customer_type),
            contact_person=given(self.contact_person),
            company=given(self.company),
            industry=given(self.industry),
            region=given(self.region),
            credit_limit=UNCHANGED if isinstance(self.credit_limit, UnsetType) else credit(self.credit_limit),
            sales_person=given(self.sales_person),
            tax_number=given(self.tax_number),
            remark=given(self.remark),
        )

    def reason(self) -> str | None:
        return None if isinstance(self.change_reason, UnsetType) else self.change_reason


class RecycleBinItem(CustomerResponse, frozen=True):
    """A deleted customer: the profile as it was, when it was deleted, when it will be purged."""

    deleted_at: datetime
    purge_after: datetime

    @classmethod
    def of_deleted(cls, customer: Customer, retention: timedelta) -> RecycleBinItem:
        deleted_at = customer.deleted_at or customer.updated_at
        live = msgspec.structs.asdict(CustomerResponse.of(customer))
        return cls(**live, deleted_at=deleted_at, purge_after=deleted_at + retention)


class CreateBackupRequest(Request, frozen=True):
    label: Label | None = None


class RestoreRequest(Request, frozen=True):
    """Restore one customer (``customerId``) or the whole ledger; ``dryRun`` only reports differences."""

    customer_id: CustomerId | None = None
    dry_run: bool = False


class BackupResponse(msgspec.Struct, rename="camel", frozen=True):
    backup_id: str
    kind: str
    label: str | None
    created_by: str
    created_at: datetime
    customer_count: int
    deleted_count: int

    @classmethod
    def of(cls, point: BackupPoint) -> BackupResponse:
        fields = msgspec.structs.asdict(point)
        return cls(**{**fields, "kind": point.kind.value})


class AuditLogItem(msgspec.Struct, rename="camel", frozen=True):
    id: int
    event_type: str
    actor_id: str
    customer_id: str | None
    application_id: str | None
    operation: str
    old_value: dict[str, Any] | None
    new_value: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    trace_id: str | None
    event_time: datetime

    @classmethod
    def of(cls, stored: StoredAuditEntry) -> AuditLogItem:
        entry = stored.entry
        return cls(
            id=stored.id,
            event_type=entry.event_type,
            actor_id=entry.actor_id,
            customer_id=entry.customer_id,
            application_id=entry.application_id,
            operation=entry.operation,
            old_value=dict(entry.old_value) if entry.old_value is not None else None,
            new_value=dict(entry.new_value) if entry.new_value is not None else None,
            ip_address=entry.ip_address,
            user_agent=entry.user_agent,
            trace_id=entry.trace_id,
            event_time=stored.event_time,
        )


# One page type per listing (rather than a generic one), so the OpenAPI document names them plainly.


class CustomerPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[CustomerResponse]
    next_cursor: str | None  # pass as ``cursor`` for the next page; null on the last one


class RecycleBinPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[RecycleBinItem]
    next_cursor: str | None


class ApplicationPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[ApplicationResponse]
    next_cursor: str | None


class BackupPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[BackupResponse]
    next_cursor: str | None


class AuditLogPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[AuditLogItem]
    next_cursor: str | None

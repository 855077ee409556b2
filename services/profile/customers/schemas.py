"""HTTP bodies of customers: create, edit, recycle bin, pages."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from msgspec import UNSET, UnsetType

from services.profile.domain.ledger import ProfileChanges
from services.profile.domain.model import DEFAULT_CUSTOMER_TYPE, AccountType, Customer, CustomerStatus
from services.profile.shared.web.schemas import (
    Address,
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
        """The fields sent (a field not sent stays unchanged); the credit limit as the decimal it names."""
        sent = {name: value for name, value in msgspec.structs.asdict(self).items() if value is not UNSET}
        sent.pop("change_reason", None)  # why the profile changes, not one of its fields
        if "credit_limit" in sent:
            sent["credit_limit"] = credit(sent["credit_limit"])
        return ProfileChanges(**sent)

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


# One page type per listing (rather than a generic one), so the OpenAPI document names them plainly.


class CustomerPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[CustomerResponse]
    next_cursor: str | None  # pass as ``cursor`` for the next page; null on the last one


class RecycleBinPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[RecycleBinItem]
    next_cursor: str | None


class CreateCustomerRequest(Request, frozen=True):
    """``createdBy``/``updatedBy`` are not fields: they are the caller's token subject."""

    customer_id: CustomerId
    customer_name: PersonName
    account_type: AccountType
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    contact_address: Address | None = None
    # Unique among live and recycled customers (409 CUSTOMER_CODE_EXISTS); absent: the customer id.
    customer_code: CustomerCode | None = None
    customer_type: CustomerType = DEFAULT_CUSTOMER_TYPE
    contact_person: ContactPerson | None = None
    company: Company | None = None
    industry: Industry | None = None
    region: Region | None = None
    credit_limit: CreditLimit = "0.00"
    sales_person: SalesPerson | None = None
    # Personal data: sealed at rest, never logged; the operation log only says that it changed.
    tax_number: TaxNumber | None = None
    remark: Remark | None = None

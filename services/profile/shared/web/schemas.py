"""HTTP request and response bodies (camelCase JSON, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from services.profile.domain import validation as rules
from services.profile.domain.model import Customer
from services.profile.shared.ports import HistoryEntry

CustomerId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=rules.CUSTOMER_ID_MAX, pattern=rules.CUSTOMER_ID_PATTERN)
]
PersonName = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.NAME_MAX, pattern=rules.NAME_PATTERN)]
Phone = Annotated[str, msgspec.Meta(max_length=rules.PHONE_MAX, pattern=rules.PHONE_PATTERN)]
Email = Annotated[str, msgspec.Meta(max_length=rules.EMAIL_MAX, pattern=rules.EMAIL_PATTERN)]
Address = Annotated[str, msgspec.Meta(max_length=rules.ADDRESS_MAX)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=rules.TEXT_PATTERN)]
ActorId = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Comment = Annotated[str, msgspec.Meta(max_length=1000)]
ApplicationId = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
CustomerCode = Annotated[
    str, msgspec.Meta(min_length=1, max_length=rules.CUSTOMER_CODE_MAX, pattern=rules.CUSTOMER_CODE_PATTERN)
]
CustomerType = Annotated[
    str, msgspec.Meta(min_length=1, max_length=rules.CUSTOMER_TYPE_MAX, pattern=rules.CUSTOMER_TYPE_PATTERN)
]
ContactPerson = Annotated[
    str, msgspec.Meta(min_length=1, max_length=rules.CONTACT_PERSON_MAX, pattern=rules.TEXT_PATTERN)
]
Company = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.COMPANY_MAX, pattern=rules.TEXT_PATTERN)]
Industry = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.INDUSTRY_MAX, pattern=rules.TEXT_PATTERN)]
Region = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.REGION_MAX, pattern=rules.TEXT_PATTERN)]
SalesPerson = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.SALES_PERSON_MAX, pattern=rules.TEXT_PATTERN)]
TaxNumber = Annotated[str, msgspec.Meta(max_length=rules.TAX_NUMBER_MAX, pattern=rules.TAX_NUMBER_PATTERN)]
Remark = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.REMARK_MAX, pattern=rules.TEXT_PATTERN)]
CreditLimit = Annotated[
    str,
    msgspec.Meta(
        max_length=16,
        pattern=rules.CREDIT_LIMIT_PATTERN,
        description="a non-negative decimal with at most two places, as a string (never a JSON number)",
        examples=["50000.00"],
    ),
]


def credit(value: str) -> Decimal:
    """A credit limit as sent (the schema's pattern has checked it) -> the decimal it names."""
    return Decimal(value)


def credit_text(value: Decimal) -> str:
    return f"{value:.2f}"


class Request(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    """Base of every request body."""


class CustomerResponse(msgspec.Struct, rename="camel", frozen=True):
    customer_id: str
    customer_name: str
    account_type: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    contact_phone: str | None
    contact_email: str | None
    contact_address: str | None
    customer_code: str
    customer_type: str
    contact_person: str | None
    company: str | None
    industry: str | None
    region: str | None
    credit_limit: str  # two decimal places, as a string
    sales_person: str | None
    tax_number: str | None
    remark: str | None
    created_by: str | None  # token subjects; null for customers created before they were recorded
    updated_by: str | None

    @classmethod
    def of(cls, customer: Customer) -> CustomerResponse:
        return cls(**customer_fields(customer))


def customer_fields(customer: Customer) -> dict[str, Any]:
    """The fields of ``CustomerResponse`` (and of the bodies that extend it) for one customer."""
    return {
        "customer_id": customer.customer_id,
        "customer_name": customer.customer_name,
        "account_type": customer.account_type.value,
        "status": customer.status.value,
        "version": customer.version,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "contact_phone": customer.contact_phone,
        "contact_email": customer.contact_email,
        "contact_address": customer.contact_address,
        "customer_code": customer.customer_code,
        "customer_type": customer.customer_type,
        "contact_person": customer.contact_person,
        "company": customer.company,
        "industry": customer.industry,
        "region": customer.region,
        "credit_limit": credit_text(customer.credit_limit),
        "sales_person": customer.sales_person,
        "tax_number": customer.tax_number,
        "remark": customer.remark,
        "created_by": customer.created_by,
        "updated_by": customer.updated_by,
    }


class HistoryItem(msgspec.Struct, rename="camel", frozen=True):
    application_id: str
    old_name: str
    new_name: str
    change_reason: str | None
    profile_version: int
    change_date: datetime
    operator_id: str
    operator_name: str | None

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryItem:
        return cls(**{name: getattr(entry, name) for name in cls.__struct_fields__})

"""HTTP request and response bodies (camelCase JSON, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from services.profile.domain import validation as rules
from services.profile.domain.model import AccountType, Customer, Decision, NameChangeApplication
from services.profile.service_layer.ports import HistoryEntry

CustomerId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=rules.CUSTOMER_ID_MAX, pattern=rules.CUSTOMER_ID_PATTERN)
]
PersonName = Annotated[str, msgspec.Meta(min_length=1, max_length=rules.NAME_MAX, pattern=rules.NAME_PATTERN)]
Phone = Annotated[str, msgspec.Meta(max_length=rules.PHONE_MAX, pattern=rules.PHONE_PATTERN)]
Email = Annotated[str, msgspec.Meta(max_length=rules.EMAIL_MAX, pattern=rules.EMAIL_PATTERN)]
Address = Annotated[str, msgspec.Meta(max_length=rules.ADDRESS_MAX)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=r"\S")]
ActorId = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Comment = Annotated[str, msgspec.Meta(max_length=1000)]
ApplicationId = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]


class Request(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    """Base of every request body."""


class CreateCustomerRequest(Request, frozen=True):
    customer_id: CustomerId
    customer_name: PersonName
    account_type: AccountType
    contact_phone: Phone | None = None
    contact_email: Email | None = None
    contact_address: Address | None = None


class SubmitApplicationRequest(Request, frozen=True):
    customer_id: CustomerId
    new_name: PersonName
    reason: Reason


class DecisionRequest(Request, frozen=True):
    decision: Decision
    auditor_id: ActorId
    comment: Comment | None = None


class ProfileUpdateRequest(Request, frozen=True):
    application_id: ApplicationId


class BatchProfileUpdateRequest(Request, frozen=True):
    application_ids: Annotated[list[ApplicationId], msgspec.Meta(min_length=1, max_length=1000)]


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

    @classmethod
    def of(cls, customer: Customer) -> CustomerResponse:
        return cls(
            customer_id=customer.customer_id,
            customer_name=customer.customer_name,
            account_type=customer.account_type.value,
            status=customer.status.value,
            version=customer.version,
            created_at=customer.created_at,
            updated_at=customer.updated_at,
            contact_phone=customer.contact_phone,
            contact_email=customer.contact_email,
            contact_address=customer.contact_address,
        )


class ApplicationResponse(msgspec.Struct, rename="camel", frozen=True):
    application_id: str
    customer_id: str
    old_name: str
    new_name: str
    reason: str
    status: str
    profile_version: int
    origin: str
    created_at: datetime
    updated_at: datetime
    auditor_id: str | None
    audit_comment: str | None
    decided_at: datetime | None
    completed_at: datetime | None
    failure_code: str | None
    failure_detail: str | None

    @classmethod
    def of(cls, application: NameChangeApplication) -> ApplicationResponse:
        fields = {name: getattr(application, name) for name in cls.__struct_fields__ if name not in _ENUMS}
        return cls(status=application.status.value, origin=application.origin.value, **fields)


_ENUMS = ("status", "origin")


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

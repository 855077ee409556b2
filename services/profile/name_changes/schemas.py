"""HTTP bodies of name-change applications and profile updates (camelCase JSON, unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from services.profile.domain.model import Decision, NameChangeApplication
from services.profile.shared.web.schemas import (
    ActorId,
    ApplicationId,
    Comment,
    CustomerId,
    PersonName,
    Reason,
    Request,
)


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


class ApplicationPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[ApplicationResponse]
    next_cursor: str | None

"""What the use cases return (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime

import msgspec


class UpdateResult(msgspec.Struct, frozen=True, rename="camel"):
    success: bool
    application_id: str
    customer_id: str
    old_name: str
    new_name: str
    profile_version: int
    update_time: datetime
    event_id: str


class Actor(msgspec.Struct, frozen=True):
    """Who asked, from where: recorded in the audit log."""

    actor_id: str
    ip_address: str | None = None
    user_agent: str | None = None
    trace_id: str | None = None


class BatchItemResult(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    application_id: str
    success: bool
    result: UpdateResult | None = None
    error_code: str | None = None
    error_detail: str | None = None

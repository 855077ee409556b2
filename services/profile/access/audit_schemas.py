"""HTTP bodies of the operation log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from services.profile.shared.ports import StoredAuditEntry


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


class AuditLogPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[AuditLogItem]
    next_cursor: str | None

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
        # The entry's fields as they are (its old and new values as plain dicts), with the row's id and time.
        fields = msgspec.structs.asdict(stored.entry)
        for name in ("old_value", "new_value"):
            if fields[name] is not None:
                fields[name] = dict(fields[name])
        return cls(id=stored.id, event_time=stored.event_time, **fields)


class AuditLogPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[AuditLogItem]
    next_cursor: str | None

"""Append-mostly records: name history, the audit log, and maintenance statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile.shared.ports import AuditEntry, AuditFilter, HistoryEntry, StoredAuditEntry
from services.profile.shared.storage.filters import equal_where_given, in_period
from services.profile.shared.storage.tables import audit_logs, idempotency_keys, name_change_history

_AUDIT_FIELDS = AuditEntry.__struct_fields__


class SqlHistoryRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entry: HistoryEntry) -> None:
        await self.add_many([entry])

    async def add_many(self, entries: Sequence[HistoryEntry]) -> None:
        if entries:
            rows = [{f: getattr(entry, f) for f in entry.__struct_fields__} for entry in entries]
            await self._connection.execute(insert(name_change_history), rows)

    async def list_for_customer(self, customer_id: str, limit: int) -> Sequence[HistoryEntry]:
        query = (
            select(*(name_change_history.c[f] for f in HistoryEntry.__struct_fields__))
            .where(name_change_history.c.customer_id == customer_id)
            .order_by(name_change_history.c.change_date.desc(), name_change_history.c.id.desc())
            .limit(limit)
        )
        rows = (await self._connection.execute(query)).mappings().all()
        return [HistoryEntry(**row) for row in rows]


def _audit_row(entry: AuditEntry, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {f: getattr(entry, f) for f in _AUDIT_FIELDS}
    values["old_value"] = dict(entry.old_value) if entry.old_value is not None else None
    values["new_value"] = dict(entry.new_value) if entry.new_value is not None else None
    values["event_time"] = now
    return values


class SqlAuditLog:
    """Insert and read only: the table's triggers refuse UPDATE, DELETE and TRUNCATE."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entry: AuditEntry, now: datetime) -> None:
        await self._connection.execute(insert(audit_logs).values(_audit_row(entry, now)))

    async def add_many(self, entries: Sequence[AuditEntry], now: datetime) -> None:
        if entries:
            await self._connection.execute(insert(audit_logs), [_audit_row(entry, now) for entry in entries])

    async def list_page(self, filters: AuditFilter, before_id: int | None, limit: int) -> Sequence[StoredAuditEntry]:
        c = audit_logs.c
        query = select(audit_logs).where(
            *equal_where_given(
                (c.customer_id, filters.customer_id), (c.actor_id, filters.actor_id), (c.event_type, filters.event_type)
            ),
            *in_period(c.event_time, filters.time_from, filters.time_to),
        )
        if before_id is not None:
            query = query.where(c.id < before_id)
        query = query.order_by(c.id.desc()).limit(limit)
        return [
            StoredAuditEntry(
                id=row["id"], entry=AuditEntry(**{f: row[f] for f in _AUDIT_FIELDS}), event_time=row["event_time"]
            )
            for row in (await self._connection.execute(query)).mappings()
        ]


class SqlMaintenance:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def ensure_history_partitions(self, months_ahead: int) -> int:
        created = await self._connection.scalar(
            text("SELECT profile.ensure_history_partitions(:months)"), {"months": months_ahead}
        )
        return int(created or 0)

    async def delete_expired_idempotency_keys(self, now: datetime, limit: int) -> int:
        k = idempotency_keys.c
        due = (
            select(k.scope, k.idempotency_key)
            .where(k.expires_at < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .subquery()
        )
        statement = delete(idempotency_keys).where(
            tuple_(k.scope, k.idempotency_key).in_(select(due.c.scope, due.c.idempotency_key))
        )
        result = await self._connection.execute(statement)
        return int(result.rowcount)

"""Admin queries on the outbox: list, get, re-drive (on the caller's transaction).

Re-drive semantics (the row keeps its ``seq``, so the relay's ``ORDER BY seq`` decides):

* A ``failed`` (parked) row goes back to ``pending`` with ``attempts`` = 0 and its
  ``last_error`` kept for history. It is the oldest row of its key, so it is published
  first and the rows that waited behind it follow in commit order: the key is unblocked
  in order.
* A ``published`` row goes back to ``pending`` and is published again, before any newer
  *pending* row of its key but after the newer rows already published. Consumers see an
  old event after a newer one; the profile version in the event lets them ignore it
  (the sync-connector records it ``superseded``), so the latest state still wins.
* A ``pending`` row is left alone (it is on its way).

Every re-drive NOTIFYs the relay in the same transaction, so it runs on commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.outbox.table import OutboxStatus

REDRIVABLE = (OutboxStatus.FAILED.value, OutboxStatus.PUBLISHED.value)


class OutboxFilter(msgspec.Struct, frozen=True):
    status: OutboxStatus | None = None
    aggregate_id: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


class OutboxEntrySummary(msgspec.Struct, rename="camel", frozen=True):
    """An outbox row without its payload and headers, as listings show it (camelCase on the wire: the admin API's)."""

    id: uuid.UUID
    seq: int
    shard: int
    aggregate_type: str
    aggregate_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    published_partition: int | None
    published_offset: int | None
    created_at: datetime
    published_at: datetime | None


class OutboxEntry(OutboxEntrySummary, frozen=True):
    """An outbox row; a listing reads it without ``payload`` and ``headers`` (None)."""

    payload: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    def summary(self) -> OutboxEntrySummary:
        return OutboxEntrySummary(**{name: getattr(self, name) for name in OutboxEntrySummary.__struct_fields__})


class RedrivenRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    aggregate_id: str
    previous_status: str


class OutboxAdmin:
    """Reads and re-drives outbox rows on one connection; the caller commits."""

    def __init__(self, connection: AsyncConnection, table: Table, notify_channel: str) -> None:
        self._connection = connection
        self._table = table
        self._channel = notify_channel
        self._summary = [table.c[name] for name in OutboxEntrySummary.__struct_fields__]

    async def page(self, where: OutboxFilter, after_seq: int | None, limit: int) -> list[OutboxEntry]:
        """A page in ``seq`` order, without payloads; the next page starts after the last ``seq``."""
        t = self._table
        conditions = self._conditions(where)
        if after_seq is not None:
            conditions.append(t.c.seq > after_seq)
        query = select(*self._summary).where(*conditions).order_by(t.c.seq).limit(limit)
        rows = (await self._connection.execute(query)).mappings().all()
        return [OutboxEntry(**row) for row in rows]

    async def get(self, entry_id: uuid.UUID) -> OutboxEntry | None:
        t = self._table
        query = select(*self._summary, t.c.payload, t.c.headers).where(t.c.id == entry_id)
        row = (await self._connection.execute(query)).mappings().first()
        return OutboxEntry(**row) if row is not None else None

    async def latest(self, aggregate_id: str, limit: int) -> list[OutboxEntry]:
        """The newest ``limit`` rows of one key, newest first, with payloads and headers (the trace context)."""
        t = self._table
        query = (
            select(*self._summary, t.c.payload, t.c.headers)
            .where(t.c.aggregate_id == aggregate_id)
            .order_by(t.c.seq.desc())
            .limit(limit)
        )
        rows = (await self._connection.execute(query)).mappings().all()
        return [OutboxEntry(**row) for row in rows]

    async def existing(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        t = self._table
        found = await self._connection.execute(select(t.c.id).where(t.c.id.in_(ids)))
        return set(found.scalars())

    async def redrive_ids(self, ids: Sequence[uuid.UUID]) -> list[RedrivenRow]:
        """Set the failed or published rows among ``ids`` back to pending."""
        return await self._redrive([self._table.c.id.in_(ids)], limit=None)

    async def redrive_matching(self, where: OutboxFilter, limit: int) -> list[RedrivenRow]:
        """Re-drive the failed or published rows matching ``where``; at most ``limit`` + 1 are touched.

        The caller rolls back when more than ``limit`` come back.
        """
        return await self._redrive(self._conditions(where), limit=limit + 1)

    async def _redrive(self, conditions: list[ColumnElement[bool]], limit: int | None) -> list[RedrivenRow]:
        t = self._table
        target_query = (
            select(t.c.id, t.c.status)
            .where(t.c.status.in_(REDRIVABLE), *conditions)
            .order_by(t.c.seq)
            .with_for_update()
        )
        if limit is not None:
            target_query = target_query.limit(limit)
        target = target_query.cte("target")
        statement = (
            update(t)
            .where(t.c.id == target.c.id)
            .values(status=OutboxStatus.PENDING.value, attempts=0)
            .returning(t.c.id, t.c.aggregate_id, target.c.status.label("previous_status"))
        )
        rows = (await self._connection.execute(statement)).mappings().all()
        if rows:
            await self._connection.execute(select(func.pg_notify(self._channel, "")))
        return [RedrivenRow(**row) for row in rows]

    def _conditions(self, where: OutboxFilter) -> list[ColumnElement[bool]]:
        t = self._table
        conditions: list[ColumnElement[bool]] = []
        if where.status is not None:
            conditions.append(t.c.status == where.status.value)
        if where.aggregate_id is not None:
            conditions.append(t.c.aggregate_id == where.aggregate_id)
        if where.created_from is not None:
            conditions.append(t.c.created_at >= where.created_from)
        if where.created_to is not None:
            conditions.append(t.c.created_at < where.created_to)
        return conditions

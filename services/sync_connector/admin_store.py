"""SQL of the admin use cases for every kind of delivery record, and the audit log.

A kind of record (the external systems' sync records, the customer notifications) is a
``RecordTable``: its table, the columns its view shows and the names of its status, target
(system or channel), attempt, count-cap and re-drive columns. The listing with its filters,
the lock of one record and the re-drive of one or many are written once, from that description.
The external systems' rows and their per-customer status are at the end of this module; the
notifications' are in ``notify/admin_store.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from sqlalchemy import RowMapping, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.connector_admin import SyncRecord, SyncRecordFilter, SystemSyncStatus
from libs.kit.db import UnitOfWork


class RecordView(Protocol):
    """What every kind's view of a record has (the rest is the kind's own, in contracts.connector_admin)."""

    @property
    def id(self) -> int: ...


ViewT = TypeVar("ViewT", bound=RecordView)


@dataclass(frozen=True)
class RecordTable(Generic[ViewT]):
    """Where one kind of record lives and what its columns are called."""

    name: str  # schema-qualified
    view: type[ViewT]  # one record as the admin API and CLI show it
    columns: str  # the SELECT list that makes a ``view``
    filter: type[msgspec.Struct]  # the listing's filter: customer_id, <target>, status, event_id
    # The view's fields are named as these columns; the filter's target field as the target column.
    target: str  # the column of the system or channel a record goes to
    status: str
    attempts: str  # attempts made, counted across re-drives
    cap: str  # the optional count cap: NULL, or attempts + another budget after a re-drive
    redrives: str  # how often an admin re-drove the record
    also_cleared: tuple[str, ...] = ()  # further columns a re-drive sets to NULL

    @cached_property
    def conditions(self) -> Mapping[str, str]:
        """A fixed condition fragment per filter field; only their bound values vary."""
        return {
            "customer_id": "customer_id = :customer_id",
            self.target: f"{self.target} = :{self.target}",
            "status": f"{self.status} = :status",
            "event_id": "event_id = CAST(:event_id AS uuid)",
        }

    @cached_property
    def lock_one(self) -> TextClause:
        return text(f"SELECT {self.columns} FROM {self.name} WHERE id = :id FOR UPDATE")  # noqa: S608 - fixed names

    def _redrive(self, ids: str) -> TextClause:
        """Back to ``retrying`` now, with a full deadline again (``deliver_by`` NULL: set at its next attempt)
        and, when a count cap is set, another full budget on top of the attempts spent; claim cleared."""
        cleared = "".join(f", {column} = NULL" for column in self.also_cleared)
        return text(f"""
            UPDATE {self.name}
            SET {self.status} = 'retrying', next_attempt_at = now(), deliver_by = NULL,
                {self.cap} = {self.attempts} + CAST(:budget AS integer), {self.redrives} = {self.redrives} + 1,
                completed_at = NULL, claim_token = NULL, updated_at = now(){cleared}
            WHERE id IN ({ids})
            RETURNING {self.columns}
        """)  # noqa: S608 - fixed names and fragments, values are bound parameters

    @cached_property
    def redrive_one(self) -> TextClause:
        return self._redrive(":id")

    @cached_property
    def redrive_many(self) -> TextClause:
        return self._redrive(f"""
            SELECT id FROM {self.name}
            WHERE {self.target} = :target AND {self.status} = :status
              AND (CAST(:customer_id AS varchar) IS NULL OR customer_id = :customer_id)
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED""")  # noqa: S608 - fixed names


class Actor(msgspec.Struct, frozen=True):
    """Who asks, for the audit log."""

    actor_id: str
    channel: str  # http | cli
    ip: str | None = None
    user_agent: str | None = None


class AdminAction(msgspec.Struct, frozen=True):
    action: str
    affected_count: int
    system_code: str | None = None
    record_id: int | None = None
    filter: dict[str, Any] = msgspec.field(default_factory=dict)
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_AUDIT = text("""
    INSERT INTO sync.admin_actions
        (actor, ip, user_agent, channel, action, system_code, record_id, filter, affected_count, details)
    VALUES (:actor_id, :ip, :user_agent, :channel, :action, :system_code, :record_id, CAST(:filter AS jsonb),
            :affected_count, CAST(:details AS jsonb))
""")


async def newest_first(
    connection: AsyncConnection,
    select_from: str,
    conditions: Mapping[str, str],
    where: msgspec.Struct,
    *,
    before_id: int | None,
    limit: int,
) -> list[RowMapping]:
    """One page of ``select_from`` by descending ``id``: the filter's set fields (each a fixed condition
    fragment of ``conditions``, values bound), after ``before_id`` when continuing."""
    params: dict[str, Any] = {k: v for k, v in msgspec.structs.asdict(where).items() if v is not None}
    clauses = [conditions[name] for name in params]
    if before_id is not None:
        clauses.append("id < :before_id")
        params["before_id"] = before_id
    where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    query = text(f"{select_from} {where_sql} ORDER BY id DESC LIMIT :limit")
    return list((await connection.execute(query, {**params, "limit": limit})).mappings())


class RecordRepository(Generic[ViewT]):
    """The admin's reads and re-drives of one kind of record."""

    def __init__(self, connection: AsyncConnection, table: RecordTable[ViewT]) -> None:
        self._connection = connection
        self._table = table

    async def page(self, where: msgspec.Struct, *, before_id: int | None, limit: int) -> list[ViewT]:
        """Newest first; ``before_id`` continues after the previous page."""
        table = self._table
        select_from = f"SELECT {table.columns} FROM {table.name}"  # noqa: S608 - fixed names
        rows = await newest_first(
            self._connection, select_from, table.conditions, where, before_id=before_id, limit=limit
        )
        return [table.view(**row) for row in rows]

    async def lock(self, record_id: int) -> ViewT | None:
        row = (await self._connection.execute(self._table.lock_one, {"id": record_id})).mappings().first()
        return None if row is None else self._table.view(**row)

    async def redrive(self, record_id: int, budget: int | None) -> ViewT:
        params = {"id": record_id, "budget": budget}
        return self._table.view(**(await self._connection.execute(self._table.redrive_one, params)).mappings().one())

    async def redrive_many(
        self, target: str, status: str, customer_id: str | None, *, budget: int | None, limit: int
    ) -> list[ViewT]:
        """At most ``limit`` records of ``target`` in ``status`` (locked ones are left for the next call)."""
        params = {"target": target, "status": status, "customer_id": customer_id, "budget": budget, "limit": limit}
        result = await self._connection.execute(self._table.redrive_many, params)
        return [self._table.view(**row) for row in result.mappings()]


class AuditLog:
    """``sync.admin_actions``: append-only, one row per admin action of any kind."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def write(self, by: Actor, action: AdminAction) -> None:
        values = msgspec.structs.asdict(by) | msgspec.structs.asdict(action)
        values["filter"] = msgspec.json.encode(action.filter).decode()
        values["details"] = msgspec.json.encode(action.details).decode()
        await self._connection.execute(_AUDIT, values)


class AdminUnitOfWork(UnitOfWork, Generic[ViewT]):
    records: RecordRepository[ViewT]
    audit: AuditLog

    def __init__(self, engine: AsyncEngine, table: RecordTable[ViewT]) -> None:
        super().__init__(engine)
        self._table = table

    def _bind(self, connection: AsyncConnection) -> None:
        self.records = RecordRepository(connection, self._table)
        self.audit = AuditLog(connection)


# The external systems' records.


_VIEW_COLUMNS = """
    id, event_id::text AS event_id, customer_id, application_id, system_code, system_name, sync_status,
    retry_count, max_retry_count, redrive_count, profile_version, last_http_status, error_message, next_attempt_at,
    blocked_by_record_id, created_at, updated_at, completed_at, sync_data
"""
SYNC_RECORDS = RecordTable(
    name="sync.external_sync_records",
    view=SyncRecord,
    columns=_VIEW_COLUMNS,
    filter=SyncRecordFilter,
    target="system_code",
    status="sync_status",
    attempts="retry_count",
    cap="max_retry_count",
    redrives="redrive_count",
    also_cleared=("blocked_by_record_id",),  # the lane decides again at its next attempt
)
_STATUS = text("""
    SELECT DISTINCT ON (r.system_code)
           r.system_code, r.system_name, r.sync_status, r.id AS record_id, r.event_id::text AS event_id,
           r.profile_version, s.applied_version, r.retry_count, r.error_message, r.next_attempt_at, r.updated_at
    FROM sync.external_sync_records r
    LEFT JOIN sync.customer_sync_state s ON s.system_code = r.system_code AND s.customer_id = r.customer_id
    WHERE r.customer_id = :customer_id
    ORDER BY r.system_code, r.profile_version DESC, r.id DESC
""")


async def latest_per_system(connection: AsyncConnection, customer_id: str) -> list[SystemSyncStatus]:
    result = await connection.execute(_STATUS, {"customer_id": customer_id})
    return [SystemSyncStatus(**row) for row in result.mappings()]

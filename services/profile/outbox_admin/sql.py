"""The outbox admin's unit of work: the outbox admin queries and the audit log, no contact keys."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.outbox.admin import OutboxAdmin
from libs.outbox.table import notify_channel
from services.profile.shared.storage.records import SqlAuditLog
from services.profile.shared.storage.tables import SCHEMA, outbox
from services.profile.shared.storage.unit_of_work import SqlUnitOfWork


class SqlOutboxAdminUnitOfWork(SqlUnitOfWork):
    outbox_admin: OutboxAdmin
    audit: SqlAuditLog

    def _bind(self, connection: AsyncConnection) -> None:
        self.outbox_admin = OutboxAdmin(connection, outbox, notify_channel(SCHEMA))
        self.audit = SqlAuditLog(connection)


class SqlOutboxAdminUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __call__(self) -> SqlOutboxAdminUnitOfWork:
        return SqlOutboxAdminUnitOfWork(self._engine)

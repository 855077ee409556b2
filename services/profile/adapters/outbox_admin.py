"""The outbox admin's unit of work: the profile unit of work plus the outbox admin queries."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.outbox.admin import OutboxAdmin
from libs.outbox.table import notify_channel
from services.profile.adapters.tables import SCHEMA, outbox
from services.profile.adapters.unit_of_work import SqlProfileUnitOfWork


class SqlOutboxAdminUnitOfWork(SqlProfileUnitOfWork):
    outbox_admin: OutboxAdmin

    async def __aenter__(self) -> SqlOutboxAdminUnitOfWork:
        await super().__aenter__()
        return self

    def _bind(self, connection: AsyncConnection) -> None:
        super()._bind(connection)
        self.outbox_admin = OutboxAdmin(connection, outbox, notify_channel(SCHEMA))


class SqlOutboxAdminUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __call__(self) -> SqlOutboxAdminUnitOfWork:
        return SqlOutboxAdminUnitOfWork(self._engine)

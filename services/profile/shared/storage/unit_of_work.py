"""The profile service's unit of work on SQLAlchemy asyncio."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db import UnitOfWork
from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import AppError, DatabaseError
from libs.outbox.writer import OutboxWriter
from services.profile.backups.sql import SqlBackupRepository
from services.profile.name_changes.sql import SqlNameChangeLedger
from services.profile.shared.storage.contact_crypto import ContactProtector
from services.profile.shared.storage.customer_repository import SqlCustomerRepository
from services.profile.shared.storage.records import SqlAuditLog, SqlHistoryRepository, SqlMaintenance
from services.profile.shared.storage.repositories import SqlApplicationRepository
from services.profile.shared.storage.tables import outbox


class SqlUnitOfWork(UnitOfWork):
    """One connection and one transaction; database faults become DatabaseError."""

    async def __aenter__(self) -> Self:
        try:
            return await super().__aenter__()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        except DATABASE_ERRORS:
            if exc is None:
                raise
        if isinstance(exc, DATABASE_ERRORS) and not isinstance(exc, AppError):
            raise DatabaseError(f"database error: {_describe(exc)}") from exc

    async def commit(self) -> None:
        try:
            await super().commit()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"commit failed: {_describe(exc)}") from exc


class SqlProfileUnitOfWork(SqlUnitOfWork):
    """The profile repositories; contact data is sealed and opened with the protector's keys."""

    customers: SqlCustomerRepository
    applications: SqlApplicationRepository
    history: SqlHistoryRepository
    audit: SqlAuditLog
    outbox: OutboxWriter
    name_changes: SqlNameChangeLedger
    backups: SqlBackupRepository
    maintenance: SqlMaintenance

    def __init__(self, engine: AsyncEngine, protector: ContactProtector) -> None:
        super().__init__(engine)
        self._protector = protector

    def _bind(self, connection: AsyncConnection) -> None:
        self.customers = SqlCustomerRepository(connection, self._protector)
        self.applications = SqlApplicationRepository(connection)
        self.history = SqlHistoryRepository(connection)
        self.audit = SqlAuditLog(connection)
        self.outbox = OutboxWriter(connection, outbox)
        self.name_changes = SqlNameChangeLedger(connection, self._protector)
        self.backups = SqlBackupRepository(connection, self._protector)
        self.maintenance = SqlMaintenance(connection)


def _describe(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return f"{type(original).__name__}: {str(original).splitlines()[0] if str(original) else ''}"[:300]


@dataclass(frozen=True)
class SqlUnitOfWorkFactory:
    """Contact data is sealed and opened with ``protector``: no unit of work without the keys."""

    engine: AsyncEngine
    protector: ContactProtector

    def __call__(self) -> SqlProfileUnitOfWork:
        return SqlProfileUnitOfWork(self.engine, self.protector)

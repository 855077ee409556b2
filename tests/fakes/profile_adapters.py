"""The profile's adapters in memory: a unit of work over ``ProfileTables`` and ``fake_services()``, the
use cases as ``assemble_services`` builds them for production, for millisecond tests without a database.

A unit of work writes to a copy of the tables; ``commit`` makes the copy the committed state, leaving
without it drops what was written since, as a rolled-back transaction does.
"""

# ruff: noqa: ARG002 - a fake keeps each port's signature and ignores what it does not model

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

from prometheus_client import CollectorRegistry

from contracts.admin_signals import AdminSignal
from libs.outbox.admin import OutboxEntry, OutboxFilter, RedrivenRow
from services.profile.bootstrap import ProfileAdapters, ProfileServices, assemble_services
from services.profile.domain.errors import RestoreInProgress
from services.profile.domain.model import Customer
from services.profile.domain.restore import BackupKind
from services.profile.shared.pagination import TimeKey
from services.profile.shared.ports import BackupPoint
from tests.fakes.profile_repositories import (
    FakeApplications,
    FakeAuditLog,
    FakeCustomers,
    FakeHistory,
    FakeNameChangeLedger,
    FakeOutbox,
    NotFaked,
    ProfileTables,
)


@dataclass
class FakeDatabase:
    tables: ProfileTables = field(default_factory=ProfileTables)
    commits: int = 0


class FakeUnitOfWork:
    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self._bind(database.tables.copy())

    def _bind(self, tables: ProfileTables) -> None:
        self._tables = tables
        self.customers = FakeCustomers(tables)
        self.applications = FakeApplications(tables)
        self.history = FakeHistory(tables)
        self.audit = FakeAuditLog(tables)
        self.outbox = FakeOutbox(tables)
        self.name_changes = FakeNameChangeLedger(tables)
        self.backups = NotFakedBackups()
        self.maintenance = NotFakedMaintenance()

    async def __aenter__(self) -> Self:
        self._bind(self._database.tables.copy())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bind(self._database.tables.copy())  # what was not committed is gone

    async def commit(self) -> None:
        self._database.tables = self._tables.copy()
        self._database.commits += 1


class FakeOutboxAdminUnitOfWork:
    def __init__(self, database: FakeDatabase) -> None:
        self._database = database
        self._tables = database.tables.copy()
        self.outbox_admin = NotFakedOutboxAdmin()
        self.audit = FakeAuditLog(self._tables)

    async def __aenter__(self) -> Self:
        self._tables = self._database.tables.copy()
        self.audit = FakeAuditLog(self._tables)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def commit(self) -> None:
        self._database.tables = self._tables.copy()
        self._database.commits += 1


class FakeRestoreLock:
    def __init__(self) -> None:
        self.held = False

    def hold(self) -> AbstractAsyncContextManager[None]:
        return self._hold()

    @asynccontextmanager
    async def _hold(self) -> AsyncIterator[None]:
        if self.held:
            raise RestoreInProgress("another restore is running")
        self.held = True
        try:
            yield
        finally:
            self.held = False


@dataclass
class FakeAdminSignalQueue:
    signals: list[AdminSignal] = field(default_factory=list)

    async def pending(self, limit: int) -> list[AdminSignal]:
        return self.signals[:limit]

    async def noted(self, ids: Sequence[int]) -> int:
        before = len(self.signals)
        self.signals = [s for s in self.signals if s.id not in ids]
        return before - len(self.signals)


class FakeClock:
    """Time stands still until a test moves it."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True, kw_only=True)
class FakeAdapters(ProfileAdapters):
    database: FakeDatabase


def fake_services(clock: FakeClock | None = None) -> ProfileServices[FakeAdapters]:
    database = FakeDatabase()
    adapters = FakeAdapters(
        uow_factory=lambda: FakeUnitOfWork(database),
        restore_lock=FakeRestoreLock(),
        outbox_admin_uow_factory=lambda: FakeOutboxAdminUnitOfWork(database),
        admin_signal_queue=FakeAdminSignalQueue(),
        clock=clock or FakeClock(),
        database=database,
    )
    return assemble_services(adapters, CollectorRegistry())


class NotFakedBackups:
    """Backup points copy tables with one INSERT ... SELECT: tested on PostgreSQL only."""

    async def take(
        self, backup_id: str, kind: BackupKind, label: str | None, created_by: str, now: datetime
    ) -> BackupPoint:
        raise NotFaked

    async def get(self, backup_id: str) -> BackupPoint | None:
        raise NotFaked

    async def list_page(self, after: TimeKey | None, limit: int) -> Sequence[BackupPoint]:
        raise NotFaked

    async def latest(self, kind: BackupKind, since: datetime) -> BackupPoint | None:
        raise NotFaked

    async def expired(self, before: datetime, keep_newest: int) -> Sequence[BackupPoint]:
        raise NotFaked

    async def delete(self, backup_id: str) -> None:
        raise NotFaked

    async def contains(self, backup_id: str, customer_id: str) -> bool:
        raise NotFaked

    async def differing_ids(
        self, backup_id: str, customer_id: str | None, after_id: str | None, limit: int
    ) -> Sequence[str]:
        raise NotFaked

    async def snapshots(self, backup_id: str, customer_ids: Sequence[str]) -> dict[str, Customer]:
        raise NotFaked

    async def live_not_in_backup(self, backup_id: str, after_id: str | None, limit: int) -> Sequence[str]:
        raise NotFaked


class NotFakedMaintenance:
    async def ensure_history_partitions(self, months_ahead: int) -> int:
        raise NotFaked

    async def delete_expired_idempotency_keys(self, now: datetime, limit: int) -> int:
        raise NotFaked


class NotFakedOutboxAdmin:
    async def page(self, where: OutboxFilter, after_seq: int | None, limit: int) -> list[OutboxEntry]:
        raise NotFaked

    async def get(self, entry_id: uuid.UUID) -> OutboxEntry | None:
        raise NotFaked

    async def latest(self, aggregate_id: str, limit: int) -> list[OutboxEntry]:
        raise NotFaked

    async def existing(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        raise NotFaked

    async def redrive_ids(self, ids: Sequence[uuid.UUID]) -> list[RedrivenRow]:
        raise NotFaked

    async def redrive_matching(self, where: OutboxFilter, limit: int) -> list[RedrivenRow]:
        raise NotFaked

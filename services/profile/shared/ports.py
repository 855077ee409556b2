"""What the use cases need from storage: repositories and a unit of work."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeAlias

import msgspec

from libs.outbox.writer import OutboxMessage
from services.profile.domain.model import (
    AccountType,
    ApplicationOrigin,
    ApplicationStatus,
    Customer,
    CustomerStatus,
    NameChange,
    NameChangeApplication,
)
from services.profile.domain.restore import BackupKind
from services.profile.shared.pagination import TimeKey


class HistoryEntry(msgspec.Struct, frozen=True):
    customer_id: str
    application_id: str
    old_name: str
    new_name: str
    change_reason: str | None
    profile_version: int
    change_date: datetime
    operator_id: str
    operator_name: str | None


class AuditEntry(msgspec.Struct, frozen=True):
    event_type: str
    actor_id: str
    operation: str
    customer_id: str | None = None
    application_id: str | None = None
    old_value: Mapping[str, Any] | None = None
    new_value: Mapping[str, Any] | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    trace_id: str | None = None


class StoredAuditEntry(msgspec.Struct, frozen=True):
    id: int
    entry: AuditEntry
    event_time: datetime


class CustomerFilter(msgspec.Struct, frozen=True):
    status: CustomerStatus | None = None
    account_type: AccountType | None = None
    name_contains: str | None = None
    name_prefix: str | None = None
    phone: str | None = None  # exact, ignoring spaces and dashes
    customer_code: str | None = None  # exact
    company_contains: str | None = None  # ignoring case
    industry: str | None = None  # exact
    region: str | None = None  # exact
    sales_person: str | None = None  # exact


class ApplicationFilter(msgspec.Struct, frozen=True):
    status: ApplicationStatus | None = None
    customer_id: str | None = None
    origin: ApplicationOrigin | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class AuditFilter(msgspec.Struct, frozen=True):
    customer_id: str | None = None
    actor_id: str | None = None
    event_type: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None


class CustomerRepository(Protocol):
    async def get(self, customer_id: str, *, for_update: bool = False) -> Customer | None: ...
    async def get_many(self, customer_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Customer]: ...
    async def add(self, customer: Customer) -> None: ...
    async def save(self, customer: Customer) -> None:
        """One customer's new version; raises CustomerCodeExists when another customer holds its code."""

    async def save_many(self, customers: Sequence[Customer]) -> None:
        """Write every mutable field of existing rows (the caller decided the new versions)."""

    async def code_holders(self, codes: Sequence[str]) -> dict[str, str]:
        """Customer code -> id of the customer (live or recycled) holding it."""

    async def defer_code_uniqueness(self) -> None:
        """Codes are checked at commit rather than per statement, for the rest of the transaction."""

    async def versions_page(self, customer_id: str, before: int | None, limit: int) -> Sequence[Customer]:
        """Kept versions (the whole record at each), newest first, below ``before`` when given."""

    async def versions(self, customer_id: str, numbers: Sequence[int]) -> dict[int, Customer]: ...
    async def prune_versions(self, keep: int, after_id: str | None, customers: int) -> tuple[int, str | None]:
        """Versions beyond the newest ``keep`` per customer, except those a backup point holds, of the
        next ``customers`` customers after ``after_id``: how many went, and where to go on (None: done)."""

    async def insert_many(self, customers: Sequence[Customer]) -> None: ...
    async def list_live(self, filters: CustomerFilter, after: TimeKey | None, limit: int) -> Sequence[Customer]: ...
    async def list_deleted(self, after: TimeKey | None, limit: int) -> Sequence[Customer]:
        """The recycle bin, most recently deleted first."""

    async def purged_versions(self, customer_ids: Sequence[str]) -> dict[str, int]: ...
    async def forget_purged(self, customer_ids: Sequence[str]) -> None: ...
    async def purge_deleted_before(self, cutoff: datetime, now: datetime, limit: int) -> Sequence[Customer]:
        """Hard-delete up to ``limit`` customers deleted before ``cutoff`` (with their applications and
        history), leaving a version tombstone; returns them."""


class ApplicationRepository(Protocol):
    async def get(self, application_id: str, *, for_update: bool = False) -> NameChangeApplication | None: ...
    async def stored_result(self, application_id: str) -> Mapping[str, Any] | None: ...
    async def add(self, application: NameChangeApplication) -> None: ...
    async def add_many(
        self, applications: Sequence[NameChangeApplication], results: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Insert applications; ``results`` (one per application) are stored as their update results."""

    async def save(self, application: NameChangeApplication) -> None: ...
    async def list_page(
        self, filters: ApplicationFilter, after: TimeKey | None, limit: int
    ) -> Sequence[NameChangeApplication]: ...


class HistoryRepository(Protocol):
    async def add(self, entry: HistoryEntry) -> None: ...
    async def add_many(self, entries: Sequence[HistoryEntry]) -> None: ...
    async def list_for_customer(self, customer_id: str, limit: int) -> Sequence[HistoryEntry]: ...


class AuditLog(Protocol):
    async def add(self, entry: AuditEntry, now: datetime) -> None: ...
    async def add_many(self, entries: Sequence[AuditEntry], now: datetime) -> None: ...
    async def list_page(self, filters: AuditFilter, before_id: int | None, limit: int) -> Sequence[StoredAuditEntry]:
        """Newest first."""


class Outbox(Protocol):
    async def add(self, message: OutboxMessage) -> None: ...
    async def add_many(self, messages: Sequence[OutboxMessage]) -> None: ...


class CompletedNameChange(msgspec.Struct, frozen=True):
    """Every row one name change of an existing application writes (invariant 1), decided before any write."""

    change: NameChange
    application: NameChangeApplication  # as it ends: completed
    stored_result: Mapping[str, Any]
    history: HistoryEntry
    audit: Sequence[AuditEntry]
    message: OutboxMessage


class NameChangeLedger(Protocol):
    """The hot path of an approval: one locking read, one write."""

    async def lock(self, application_id: str) -> tuple[NameChangeApplication, Customer] | None:
        """The application and its customer, both locked (application first); None when there is none."""

    async def write(self, completed: CompletedNameChange) -> None:
        """Profile name and version, completed application, history, audit and outbox rows."""


class BackupPoint(msgspec.Struct, frozen=True):
    backup_id: str
    kind: BackupKind
    label: str | None
    created_by: str
    created_at: datetime
    customer_count: int
    deleted_count: int


class BackupRepository(Protocol):
    async def take(
        self, backup_id: str, kind: BackupKind, label: str | None, created_by: str, now: datetime
    ) -> BackupPoint:
        """Copy every customer row (recycle bin included) with one INSERT ... SELECT."""

    async def get(self, backup_id: str) -> BackupPoint | None: ...
    async def list_page(self, after: TimeKey | None, limit: int) -> Sequence[BackupPoint]: ...
    async def latest(self, kind: BackupKind, since: datetime) -> BackupPoint | None: ...
    async def expired(self, before: datetime, keep_newest: int) -> Sequence[BackupPoint]: ...
    async def delete(self, backup_id: str) -> None: ...
    async def contains(self, backup_id: str, customer_id: str) -> bool: ...
    async def differing_ids(
        self, backup_id: str, customer_id: str | None, after_id: str | None, limit: int
    ) -> Sequence[str]:
        """Ids (ascending) whose snapshot differs from the current row or has no current row."""

    async def snapshots(self, backup_id: str, customer_ids: Sequence[str]) -> dict[str, Customer]: ...
    async def live_not_in_backup(self, backup_id: str, after_id: str | None, limit: int) -> Sequence[str]:
        """Ids (ascending) of live customers created after the backup point."""


class RestoreLock(Protocol):
    def hold(self) -> AbstractAsyncContextManager[None]:
        """Held for a whole restore; raises RestoreInProgress when another restore holds it."""


class Maintenance(Protocol):
    async def ensure_history_partitions(self, months_ahead: int) -> int:
        """Create the monthly name-history partitions up to ``months_ahead``; returns how many were new."""

    async def delete_expired_idempotency_keys(self, now: datetime, limit: int) -> int: ...


class Transaction(Protocol):
    """A unit of work's transaction: entered, committed explicitly, rolled back on leaving otherwise."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


class ProfileUnitOfWork(Transaction, Protocol):
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def applications(self) -> ApplicationRepository: ...
    @property
    def history(self) -> HistoryRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def name_changes(self) -> NameChangeLedger: ...
    @property
    def backups(self) -> BackupRepository: ...
    @property
    def maintenance(self) -> Maintenance: ...


UnitOfWorkFactory: TypeAlias = Callable[[], ProfileUnitOfWork]

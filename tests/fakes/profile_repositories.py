"""In-memory repositories of the profile's unit of work: dictionaries and lists (cosmicpython's fakes).

They keep the rules the tables and their constraints keep (a customer id and a customer code are
unique, each saved version is kept, an approval writes every row of the change). Queries only
maintenance and listings run are not faked: they raise ``NotFaked``.
"""

# ruff: noqa: ARG002 - a fake keeps each port's signature and ignores what it does not model

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from libs.outbox.writer import OutboxMessage
from services.profile.domain.errors import CustomerAlreadyExists, CustomerCodeExists
from services.profile.domain.model import ChangeKind, Customer, NameChangeApplication
from services.profile.shared.pagination import TimeKey
from services.profile.shared.ports import (
    ApplicationFilter,
    AuditEntry,
    AuditFilter,
    CompletedNameChange,
    CustomerFilter,
    HistoryEntry,
    StoredAuditEntry,
)

Row = TypeVar("Row")


class NotFaked(NotImplementedError):
    """A query no fast test needs; its use cases are tested on PostgreSQL."""


@dataclass
class ProfileTables:
    """The committed state of the fake database (a unit of work writes to a copy)."""

    customers: dict[str, Customer] = field(default_factory=dict)
    versions: dict[tuple[str, int], Customer] = field(default_factory=dict)
    purged: dict[str, int] = field(default_factory=dict)  # customer id -> last version before the purge
    applications: dict[str, NameChangeApplication] = field(default_factory=dict)
    results: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # application id -> update result
    history: list[HistoryEntry] = field(default_factory=list)
    audit: list[StoredAuditEntry] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)

    def copy(self) -> ProfileTables:
        # Rows are frozen: copying the containers isolates a transaction.
        return ProfileTables(
            dict(self.customers),
            dict(self.versions),
            dict(self.purged),
            dict(self.applications),
            dict(self.results),
            list(self.history),
            list(self.audit),
            list(self.outbox),
        )


def _code_taken(code: str) -> CustomerCodeExists:
    return CustomerCodeExists(f"customer code {code} is used by another customer (live or in the recycle bin)")


class FakeCustomers:
    def __init__(self, tables: ProfileTables) -> None:
        self._t = tables

    async def get(self, customer_id: str, *, for_update: bool = False) -> Customer | None:
        return self._t.customers.get(customer_id)

    async def get_many(self, customer_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Customer]:
        return {i: self._t.customers[i] for i in customer_ids if i in self._t.customers}

    def _check_code(self, customer: Customer) -> None:
        for other in self._t.customers.values():
            if other.customer_code == customer.customer_code and other.customer_id != customer.customer_id:
                raise _code_taken(customer.customer_code)

    def _store(self, customer: Customer) -> None:
        self._check_code(customer)
        self._t.customers[customer.customer_id] = customer
        self._t.versions[customer.customer_id, customer.version] = customer

    async def add(self, customer: Customer) -> None:
        if customer.customer_id in self._t.customers:
            raise CustomerAlreadyExists(f"customer {customer.customer_id} already exists")
        self._store(customer)

    async def save(self, customer: Customer) -> None:
        self._store(customer)

    async def save_many(self, customers: Sequence[Customer]) -> None:
        for customer in customers:
            self._store(customer)

    async def code_holders(self, codes: Sequence[str]) -> dict[str, str]:
        return {c.customer_code: c.customer_id for c in self._t.customers.values() if c.customer_code in codes}

    async def defer_code_uniqueness(self) -> None:
        """Each write checks its code at once: no test here depends on deferring."""

    async def versions_page(self, customer_id: str, before: int | None, limit: int) -> Sequence[Customer]:
        kept = sorted(
            (v for (i, n), v in self._t.versions.items() if i == customer_id and (before is None or n < before)),
            key=lambda v: v.version,
            reverse=True,
        )
        return kept[:limit]

    async def versions(self, customer_id: str, numbers: Sequence[int]) -> dict[int, Customer]:
        return {n: self._t.versions[customer_id, n] for n in numbers if (customer_id, n) in self._t.versions}

    async def prune_versions(self, keep: int, after_id: str | None, customers: int) -> tuple[int, str | None]:
        raise NotFaked

    async def insert_many(self, customers: Sequence[Customer]) -> None:
        for customer in customers:
            await self.add(customer)

    async def list_live(self, filters: CustomerFilter, after: TimeKey | None, limit: int) -> Sequence[Customer]:
        raise NotFaked

    async def list_deleted(self, after: TimeKey | None, limit: int) -> Sequence[Customer]:
        deleted = [c for c in self._t.customers.values() if c.is_deleted]
        deleted.sort(key=lambda c: (c.deleted_at or c.updated_at, c.customer_id), reverse=True)
        return [c for c in deleted if after is None or (c.deleted_at or c.updated_at, c.customer_id) < after][:limit]

    async def purged_versions(self, customer_ids: Sequence[str]) -> dict[str, int]:
        return {i: self._t.purged[i] for i in customer_ids if i in self._t.purged}

    async def forget_purged(self, customer_ids: Sequence[str]) -> None:
        for customer_id in customer_ids:
            self._t.purged.pop(customer_id, None)

    async def purge_deleted_before(self, cutoff: datetime, now: datetime, limit: int) -> Sequence[Customer]:
        raise NotFaked


class FakeApplications:
    def __init__(self, tables: ProfileTables) -> None:
        self._t = tables

    async def get(self, application_id: str, *, for_update: bool = False) -> NameChangeApplication | None:
        return self._t.applications.get(application_id)

    async def stored_result(self, application_id: str) -> Mapping[str, Any] | None:
        return self._t.results.get(application_id)

    async def add(self, application: NameChangeApplication) -> None:
        self._t.applications[application.application_id] = application

    async def add_many(
        self, applications: Sequence[NameChangeApplication], results: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        for index, application in enumerate(applications):
            self._t.applications[application.application_id] = application
            if results is not None:
                self._t.results[application.application_id] = results[index]

    async def save(self, application: NameChangeApplication) -> None:
        self._t.applications[application.application_id] = application

    async def list_page(
        self, filters: ApplicationFilter, after: TimeKey | None, limit: int
    ) -> Sequence[NameChangeApplication]:
        raise NotFaked


class _Appended(Generic[Row]):
    """A table whose rows are only ever appended, one or several at a time."""

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    async def add(self, row: Row) -> None:
        self._rows.append(row)

    async def add_many(self, rows: Sequence[Row]) -> None:
        self._rows.extend(rows)


class FakeHistory(_Appended[HistoryEntry]):
    def __init__(self, tables: ProfileTables) -> None:
        super().__init__(tables.history)

    async def list_for_customer(self, customer_id: str, limit: int) -> Sequence[HistoryEntry]:
        return [e for e in reversed(self._rows) if e.customer_id == customer_id][:limit]


class FakeAuditLog:
    def __init__(self, tables: ProfileTables) -> None:
        self._t = tables

    async def add(self, entry: AuditEntry, now: datetime) -> None:
        self._t.audit.append(StoredAuditEntry(id=len(self._t.audit) + 1, entry=entry, event_time=now))

    async def add_many(self, entries: Sequence[AuditEntry], now: datetime) -> None:
        for entry in entries:
            await self.add(entry, now)

    async def list_page(self, filters: AuditFilter, before_id: int | None, limit: int) -> Sequence[StoredAuditEntry]:
        raise NotFaked


class FakeOutbox(_Appended[OutboxMessage]):
    def __init__(self, tables: ProfileTables) -> None:
        super().__init__(tables.outbox)


class FakeNameChangeLedger:
    """The approval's one read and one write, as ``name_changes/sql.py`` runs them."""

    def __init__(self, tables: ProfileTables) -> None:
        self._t = tables

    async def lock(self, application_id: str) -> tuple[NameChangeApplication, Customer] | None:
        application = self._t.applications.get(application_id)
        customer = self._t.customers.get(application.customer_id) if application is not None else None
        return None if application is None or customer is None else (application, customer)

    async def write(self, completed: CompletedNameChange) -> None:
        change, history = completed.change, completed.history
        renamed = replace(
            change.customer,
            customer_name=history.new_name,
            version=change.new_version,
            updated_at=change.changed_at,
            updated_by=history.operator_id,
            change_kind=ChangeKind.NAME_CHANGE,
        )
        self._t.customers[renamed.customer_id] = renamed
        self._t.versions[renamed.customer_id, renamed.version] = renamed
        self._t.applications[completed.application.application_id] = completed.application
        self._t.results[completed.application.application_id] = completed.stored_result
        self._t.history.append(history)
        for entry in completed.audit:
            self._t.audit.append(StoredAuditEntry(id=len(self._t.audit) + 1, entry=entry, event_time=change.changed_at))
        self._t.outbox.append(completed.message)

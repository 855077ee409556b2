"""What the use cases need from storage: repositories and a unit of work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

import msgspec

from libs.outbox.writer import OutboxMessage
from services.profile.domain.model import Customer, NameChange, NameChangeApplication


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


class CustomerRepository(Protocol):
    async def get(self, customer_id: str, *, for_update: bool = False) -> Customer | None: ...
    async def add(self, customer: Customer) -> None: ...
    async def apply_name_change(self, change: NameChange) -> None: ...


class ApplicationRepository(Protocol):
    async def get(self, application_id: str, *, for_update: bool = False) -> NameChangeApplication | None: ...
    async def stored_result(self, application_id: str) -> Mapping[str, Any] | None: ...
    async def add(self, application: NameChangeApplication) -> None: ...
    async def save(self, application: NameChangeApplication) -> None: ...
    async def complete(self, application_id: str, result: Mapping[str, Any], now: datetime) -> None: ...
    async def mark_update_failed(self, application_id: str, code: str, detail: str, now: datetime) -> None: ...


class HistoryRepository(Protocol):
    async def add(self, entry: HistoryEntry) -> None: ...
    async def list_for_customer(self, customer_id: str, limit: int) -> Sequence[HistoryEntry]: ...


class AuditLog(Protocol):
    async def add(self, entry: AuditEntry, now: datetime) -> None: ...


class Outbox(Protocol):
    async def add(self, message: OutboxMessage) -> None: ...


class ProfileUnitOfWork(Protocol):
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

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> ProfileUnitOfWork: ...

"""SQLAlchemy Core repositories of the profile schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile.adapters.tables import (
    audit_logs,
    customer_profiles,
    name_change_applications,
    name_change_history,
)
from services.profile.domain.errors import CustomerAlreadyExists
from services.profile.domain.model import (
    AccountType,
    ApplicationStatus,
    Customer,
    CustomerStatus,
    NameChange,
    NameChangeApplication,
)
from services.profile.service_layer.ports import AuditEntry, HistoryEntry


def _customer(row: RowMapping) -> Customer:
    return Customer(
        customer_id=row["customer_id"],
        customer_name=row["customer_name"],
        contact_phone=row["contact_phone"],
        contact_email=row["contact_email"],
        contact_address=row["contact_address"],
        account_type=AccountType(row["account_type"]),
        status=CustomerStatus(row["status"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
    )


_APPLICATION_FIELDS = (
    "application_id",
    "customer_id",
    "old_name",
    "new_name",
    "reason",
    "profile_version",
    "created_at",
    "updated_at",
    "auditor_id",
    "audit_comment",
    "decided_at",
    "completed_at",
    "failure_code",
    "failure_detail",
)


def _application(row: RowMapping) -> NameChangeApplication:
    return NameChangeApplication(
        status=ApplicationStatus(row["status"]), **{name: row[name] for name in _APPLICATION_FIELDS}
    )


class SqlCustomerRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, customer_id: str, *, for_update: bool = False) -> Customer | None:
        query = select(customer_profiles).where(customer_profiles.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._connection.execute(query)).mappings().first()
        return None if row is None else _customer(row)

    async def add(self, customer: Customer) -> None:
        values = {name: getattr(customer, name) for name in customer_profiles.c.keys()}  # noqa: SIM118
        try:
            async with self._connection.begin_nested():
                await self._connection.execute(insert(customer_profiles).values(values))
        except IntegrityError as exc:
            raise CustomerAlreadyExists(f"customer {customer.customer_id} already exists") from exc

    async def apply_name_change(self, change: NameChange) -> None:
        await self._connection.execute(
            update(customer_profiles)
            .where(customer_profiles.c.customer_id == change.customer.customer_id)
            .values(customer_name=change.application.new_name, version=change.new_version, updated_at=change.changed_at)
        )


class SqlApplicationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, application_id: str, *, for_update: bool = False) -> NameChangeApplication | None:
        query = select(name_change_applications).where(name_change_applications.c.application_id == application_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._connection.execute(query)).mappings().first()
        return None if row is None else _application(row)

    async def stored_result(self, application_id: str) -> Mapping[str, Any] | None:
        query = select(name_change_applications.c.update_result).where(
            name_change_applications.c.application_id == application_id
        )
        result: Mapping[str, Any] | None = (await self._connection.execute(query)).scalar_one_or_none()
        return result

    async def add(self, application: NameChangeApplication) -> None:
        values = {name: getattr(application, name) for name in _APPLICATION_FIELDS}
        await self._connection.execute(
            insert(name_change_applications).values(status=application.status.value, **values)
        )

    async def save(self, application: NameChangeApplication) -> None:
        await self._connection.execute(
            update(name_change_applications)
            .where(name_change_applications.c.application_id == application.application_id)
            .values(
                status=application.status.value,
                auditor_id=application.auditor_id,
                audit_comment=application.audit_comment,
                decided_at=application.decided_at,
                updated_at=application.updated_at,
            )
        )

    async def complete(self, application_id: str, result: Mapping[str, Any], now: datetime) -> None:
        await self._connection.execute(
            update(name_change_applications)
            .where(name_change_applications.c.application_id == application_id)
            .values(
                status=ApplicationStatus.COMPLETED.value,
                completed_at=now,
                updated_at=now,
                update_result=dict(result),
                failure_code=None,
                failure_detail=None,
            )
        )

    async def mark_update_failed(self, application_id: str, code: str, detail: str, now: datetime) -> None:
        await self._connection.execute(
            update(name_change_applications)
            .where(name_change_applications.c.application_id == application_id)
            .values(
                status=ApplicationStatus.UPDATE_FAILED.value,
                failure_code=code,
                failure_detail=detail[:2000],
                updated_at=now,
            )
        )


class SqlHistoryRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entry: HistoryEntry) -> None:
        await self._connection.execute(
            insert(name_change_history).values({f: getattr(entry, f) for f in entry.__struct_fields__})
        )

    async def list_for_customer(self, customer_id: str, limit: int) -> Sequence[HistoryEntry]:
        query = (
            select(*(name_change_history.c[f] for f in HistoryEntry.__struct_fields__))
            .where(name_change_history.c.customer_id == customer_id)
            .order_by(name_change_history.c.change_date.desc(), name_change_history.c.id.desc())
            .limit(limit)
        )
        rows = (await self._connection.execute(query)).mappings().all()
        return [HistoryEntry(**row) for row in rows]


class SqlAuditLog:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, entry: AuditEntry, now: datetime) -> None:
        values: dict[str, Any] = {f: getattr(entry, f) for f in entry.__struct_fields__}
        values["old_value"] = dict(entry.old_value) if entry.old_value is not None else None
        values["new_value"] = dict(entry.new_value) if entry.new_value is not None else None
        await self._connection.execute(insert(audit_logs).values(event_time=now, **values))

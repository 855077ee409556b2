"""Rows of customer profiles and name-change applications as domain objects (for every adapter
that reads them), and the SQLAlchemy Core repository of applications."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, insert, literal, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile.domain.model import (
    AccountType,
    ApplicationOrigin,
    ApplicationStatus,
    ChangeKind,
    Customer,
    CustomerStatus,
    NameChangeApplication,
)
from services.profile.shared.pagination import TimeKey
from services.profile.shared.ports import ApplicationFilter
from services.profile.shared.storage.contact_crypto import PERSONAL_FIELDS, SEALED_COLUMNS, ContactProtector
from services.profile.shared.storage.filters import equal_where_given, in_period
from services.profile.shared.storage.tables import customer_profiles, name_change_applications

_CUSTOMER_COLUMNS = tuple(customer_profiles.c.keys())
_PLAIN_COLUMNS = tuple(c for c in _CUSTOMER_COLUMNS if c not in SEALED_COLUMNS)
_ENUM_COLUMNS = ("account_type", "status", "change_kind")


def customer_from_row(row: RowMapping | Mapping[str, Any], protector: ContactProtector) -> Customer:
    """A live row, a backup copy or a version; personal data opened with the protector's keys."""
    personal = protector.open_personal(row)
    return Customer(
        customer_id=row["customer_id"],
        customer_name=row["customer_name"],
        contact_phone=personal["contact_phone"],
        contact_email=personal["contact_email"],
        contact_address=personal["contact_address"],
        account_type=AccountType(row["account_type"]),
        status=CustomerStatus(row["status"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
        customer_code=row["customer_code"] or row["customer_id"],  # older backup copies: the id
        customer_type=row["customer_type"],
        contact_person=row["contact_person"],
        company=row["company"],
        industry=row["industry"],
        region=row["region"],
        credit_limit=row["credit_limit"],
        sales_person=row["sales_person"],
        tax_number=personal["tax_number"],
        remark=row["remark"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        change_kind=ChangeKind(row["change_kind"] or ChangeKind.BASELINE.value),
    )


def customer_values(customer: Customer, protector: ContactProtector) -> dict[str, Any]:
    values = {name: getattr(customer, name) for name in _PLAIN_COLUMNS}
    for name in _ENUM_COLUMNS:
        values[name] = getattr(customer, name).value
    personal = {field: getattr(customer, field) for field in PERSONAL_FIELDS}
    return {**values, **protector.seal_personal(customer.customer_id, personal)}


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


# What a decision or a re-application may change: not what the application was filed with, nor its
# completion (the name-change ledger's write).
_DECIDED_COLUMNS = tuple(
    name
    for name in (*_APPLICATION_FIELDS, "status")
    if name not in ("application_id", "customer_id", "new_name", "reason", "created_at", "completed_at")
)


def application_from_row(row: RowMapping | Mapping[str, Any]) -> NameChangeApplication:
    return NameChangeApplication(
        status=ApplicationStatus(row["status"]),
        origin=ApplicationOrigin(row["origin"]),
        **{name: row[name] for name in _APPLICATION_FIELDS},
    )


def _application_values(application: NameChangeApplication) -> dict[str, Any]:
    values = {name: getattr(application, name) for name in _APPLICATION_FIELDS}
    return {**values, "status": application.status.value, "origin": application.origin.value}


class SqlApplicationRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, application_id: str, *, for_update: bool = False) -> NameChangeApplication | None:
        query = select(name_change_applications).where(name_change_applications.c.application_id == application_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._connection.execute(query)).mappings().first()
        return None if row is None else application_from_row(row)

    async def stored_result(self, application_id: str) -> Mapping[str, Any] | None:
        query = select(name_change_applications.c.update_result).where(
            name_change_applications.c.application_id == application_id
        )
        result: Mapping[str, Any] | None = (await self._connection.execute(query)).scalar_one_or_none()
        return result

    async def add(self, application: NameChangeApplication) -> None:
        await self._connection.execute(insert(name_change_applications).values(_application_values(application)))

    async def add_many(
        self, applications: Sequence[NameChangeApplication], results: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        if not applications:
            return
        rows = [_application_values(a) for a in applications]
        if results is not None:
            for row, result in zip(rows, results, strict=True):
                row["update_result"] = dict(result)
        await self._connection.execute(insert(name_change_applications), rows)

    async def save(self, application: NameChangeApplication) -> None:
        """Write the fields a decision or a re-application changes."""
        values = _application_values(application)
        await self._connection.execute(
            update(name_change_applications)
            .where(name_change_applications.c.application_id == application.application_id)
            .values({name: values[name] for name in _DECIDED_COLUMNS})
        )

    async def list_page(
        self, filters: ApplicationFilter, after: TimeKey | None, limit: int
    ) -> Sequence[NameChangeApplication]:
        a = name_change_applications.c
        query = select(name_change_applications).where(
            *equal_where_given(
                (a.status, filters.status), (a.customer_id, filters.customer_id), (a.origin, filters.origin)
            ),
            *in_period(a.created_at, filters.created_from, filters.created_to),
        )
        if after is not None:
            query = query.where(tuple_(a.created_at, a.application_id) < keyset_position(after))
        query = query.order_by(a.created_at.desc(), a.application_id.desc()).limit(limit)
        return [application_from_row(row) for row in (await self._connection.execute(query)).mappings()]


def keyset_position(position: TimeKey) -> ColumnElement[Any]:
    """A keyset position as a row value to compare ``(timestamp, id)`` columns with."""
    return tuple_(literal(position[0]), literal(position[1]))

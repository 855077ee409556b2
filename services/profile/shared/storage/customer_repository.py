"""SQLAlchemy Core repository of customer profiles: live rows, their versions, the purged ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, literal, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.profile.domain.errors import CustomerAlreadyExists, CustomerCodeExists
from services.profile.domain.model import Customer
from services.profile.shared.pagination import TimeKey
from services.profile.shared.ports import CustomerFilter
from services.profile.shared.storage.contact_crypto import ContactProtector
from services.profile.shared.storage.filters import equal_where_given
from services.profile.shared.storage.repositories import customer_from_row, customer_values, keyset_position
from services.profile.shared.storage.tables import (
    backup_customers,
    backups,
    customer_profiles,
    customer_versions,
    name_change_applications,
    name_change_history,
    purged_customers,
)

_MUTABLE_CUSTOMER_COLUMNS = tuple(
    c.name for c in customer_profiles.c if c.name not in ("customer_id", "created_at", "created_by")
)
CODE_CONSTRAINT = "customer_profiles_customer_code_key"


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint a write violated (asyncpg reports it on the driver's error)."""
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        name = getattr(error, "constraint_name", None)
        if isinstance(name, str):
            return name
    return CODE_CONSTRAINT if CODE_CONSTRAINT in str(exc.orig) else None


def code_taken(code: str) -> CustomerCodeExists:
    return CustomerCodeExists(f"customer code {code} is used by another customer (live or in the recycle bin)")


class SqlCustomerRepository:
    def __init__(self, connection: AsyncConnection, protector: ContactProtector) -> None:
        self._connection = connection
        self._protector = protector

    def _customer(self, row: RowMapping) -> Customer:
        return customer_from_row(row, self._protector)

    async def get(self, customer_id: str, *, for_update: bool = False) -> Customer | None:
        query = select(customer_profiles).where(customer_profiles.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._connection.execute(query)).mappings().first()
        return None if row is None else self._customer(row)

    async def get_many(self, customer_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Customer]:
        if not customer_ids:
            return {}
        # Locks are taken in id order, so two bulk writers never deadlock on each other.
        query = (
            select(customer_profiles)
            .where(customer_profiles.c.customer_id.in_(list(customer_ids)))
            .order_by(customer_profiles.c.customer_id)
        )
        if for_update:
            query = query.with_for_update()
        rows = (await self._connection.execute(query)).mappings().all()
        return {row["customer_id"]: self._customer(row) for row in rows}

    async def add(self, customer: Customer) -> None:
        try:
            async with self._connection.begin_nested():
                await self._connection.execute(
                    insert(customer_profiles).values(customer_values(customer, self._protector))
                )
        except IntegrityError as exc:
            if violated_constraint(exc) == CODE_CONSTRAINT:
                raise code_taken(customer.customer_code) from exc
            raise CustomerAlreadyExists(f"customer {customer.customer_id} already exists") from exc

    async def save(self, customer: Customer) -> None:
        """One customer's new version; a code another customer holds is 409 ``CUSTOMER_CODE_EXISTS``.

        No savepoint: the refusal ends the unit of work, which rolls back.
        """
        try:
            await self.save_many([customer])
        except IntegrityError as exc:
            if violated_constraint(exc) == CODE_CONSTRAINT:
                raise code_taken(customer.customer_code) from exc
            raise

    async def code_holders(self, codes: Sequence[str]) -> dict[str, str]:
        """Customer code -> the id of the customer (live or recycled) that holds it."""
        if not codes:
            return {}
        c = customer_profiles.c
        query = select(c.customer_code, c.customer_id).where(c.customer_code.in_(list(codes)))
        return {row.customer_code: row.customer_id for row in await self._connection.execute(query)}

    async def defer_code_uniqueness(self) -> None:
        """Until commit, codes may be held twice (a restore swapping two customers' codes)."""
        await self._connection.execute(text(f"SET CONSTRAINTS profile.{CODE_CONSTRAINT} DEFERRED"))

    async def versions_page(self, customer_id: str, before: int | None, limit: int) -> Sequence[Customer]:
        """Kept versions, newest first, below ``before`` when given."""
        v = customer_versions.c
        query = select(customer_versions).where(v.customer_id == customer_id)
        if before is not None:
            query = query.where(v.version < before)
        query = query.order_by(v.version.desc()).limit(limit)
        return [self._customer(row) for row in (await self._connection.execute(query)).mappings()]

    async def versions(self, customer_id: str, numbers: Sequence[int]) -> dict[int, Customer]:
        if not numbers:
            return {}
        v = customer_versions.c
        query = select(customer_versions).where(v.customer_id == customer_id, v.version.in_(list(numbers)))
        return {row["version"]: self._customer(row) for row in (await self._connection.execute(query)).mappings()}

    async def prune_versions(self, keep: int, after_id: str | None, customers: int) -> tuple[int, str | None]:
        """Delete versions beyond the newest ``keep`` of the next ``customers`` customers (by id).

        Never the current version (always among the newest), nor one a backup point holds.
        Returns the versions deleted and the last customer id looked at (None: done).
        """
        v = customer_versions.c
        ids_query = select(v.customer_id).distinct().order_by(v.customer_id).limit(customers)
        if after_id is not None:
            ids_query = ids_query.where(v.customer_id > after_id)
        ids = list((await self._connection.execute(ids_query)).scalars())
        if not ids:
            return 0, None
        ranked = (
            select(
                v.customer_id,
                v.version,
                func.row_number().over(partition_by=v.customer_id, order_by=v.version.desc()).label("rank"),
            )
            .where(v.customer_id.in_(ids))
            .subquery()
        )
        b = backup_customers.c
        held = (
            select(literal(1))
            .select_from(backups.join(backup_customers, b.backup_id == backups.c.backup_id))
            .where(b.customer_id == v.customer_id, b.version == v.version)
            .exists()
        )
        statement = (
            delete(customer_versions)
            .where(
                v.customer_id == ranked.c.customer_id,
                v.version == ranked.c.version,
                ranked.c.rank > keep,
                ~held,
            )
            .returning(v.version)
        )
        deleted = len((await self._connection.execute(statement)).all())
        return deleted, ids[-1] if len(ids) == customers else None

    async def save_many(self, customers: Sequence[Customer]) -> None:
        if not customers:
            return
        statement = (
            update(customer_profiles)
            .where(customer_profiles.c.customer_id == bindparam("key_customer_id"))
            .values({name: bindparam(f"new_{name}") for name in _MUTABLE_CUSTOMER_COLUMNS})
        )
        rows = []
        for customer in customers:
            values = customer_values(customer, self._protector)
            rows.append(
                {"key_customer_id": customer.customer_id, **{f"new_{n}": values[n] for n in _MUTABLE_CUSTOMER_COLUMNS}}
            )
        await self._connection.execute(statement, rows)

    async def insert_many(self, customers: Sequence[Customer]) -> None:
        if customers:
            await self._connection.execute(
                insert(customer_profiles), [customer_values(c, self._protector) for c in customers]
            )

    async def list_live(self, filters: CustomerFilter, after: TimeKey | None, limit: int) -> Sequence[Customer]:
        c = customer_profiles.c
        query = select(customer_profiles).where(
            c.deleted_at.is_(None),
            *equal_where_given(
                (c.status, filters.status),
                (c.account_type, filters.account_type),
                (c.customer_code, filters.customer_code),
                (c.industry, filters.industry),
                (c.region, filters.region),
                (c.sales_person, filters.sales_person),
            ),
        )
        if filters.name_prefix:
            query = query.where(c.customer_name.startswith(filters.name_prefix, autoescape=True))
        if filters.name_contains:
            query = query.where(c.customer_name.icontains(filters.name_contains, autoescape=True))
        if filters.phone is not None:  # an equality on the keyed hash: the phone is never compared in plaintext
            query = query.where(c.contact_phone_hash == self._protector.phone_hash(filters.phone))
        if filters.company_contains:
            query = query.where(c.company.icontains(filters.company_contains, autoescape=True))
        if after is not None:
            query = query.where(tuple_(c.created_at, c.customer_id) > keyset_position(after))
        query = query.order_by(c.created_at, c.customer_id).limit(limit)
        return [self._customer(row) for row in (await self._connection.execute(query)).mappings()]

    async def list_deleted(self, after: TimeKey | None, limit: int) -> Sequence[Customer]:
        c = customer_profiles.c
        query = select(customer_profiles).where(c.deleted_at.is_not(None))
        if after is not None:
            query = query.where(tuple_(c.deleted_at, c.customer_id) < keyset_position(after))
        query = query.order_by(c.deleted_at.desc(), c.customer_id.desc()).limit(limit)
        return [self._customer(row) for row in (await self._connection.execute(query)).mappings()]

    async def purged_versions(self, customer_ids: Sequence[str]) -> dict[str, int]:
        if not customer_ids:
            return {}
        query = select(purged_customers.c.customer_id, purged_customers.c.last_version).where(
            purged_customers.c.customer_id.in_(list(customer_ids))
        )
        return {row.customer_id: row.last_version for row in await self._connection.execute(query)}

    async def forget_purged(self, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            await self._connection.execute(
                delete(purged_customers).where(purged_customers.c.customer_id.in_(list(customer_ids)))
            )

    async def purge_deleted_before(self, cutoff: datetime, now: datetime, limit: int) -> Sequence[Customer]:
        c = customer_profiles.c
        due_query = (
            select(customer_profiles)
            .where(c.deleted_at < cutoff)
            .order_by(c.deleted_at, c.customer_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        due = [self._customer(row) for row in (await self._connection.execute(due_query)).mappings()]
        if not due:
            return due
        ids = [customer.customer_id for customer in due]
        await self._connection.execute(delete(name_change_history).where(name_change_history.c.customer_id.in_(ids)))
        # Their versions go with them: the recycle bin's retention is theirs too (a backup point keeps its copy).
        await self._connection.execute(delete(customer_versions).where(customer_versions.c.customer_id.in_(ids)))
        await self._connection.execute(
            delete(name_change_applications).where(name_change_applications.c.customer_id.in_(ids))
        )
        await self._connection.execute(delete(customer_profiles).where(c.customer_id.in_(ids)))
        tombstones = pg_insert(purged_customers).values(
            [{"customer_id": x.customer_id, "last_version": x.version, "purged_at": now} for x in due]
        )
        await self._connection.execute(
            tombstones.on_conflict_do_update(
                index_elements=[purged_customers.c.customer_id],
                set_={"last_version": tombstones.excluded.last_version, "purged_at": tombstones.excluded.purged_at},
            )
        )
        return due

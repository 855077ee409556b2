"""Re-seal personal data under the active key: live profiles, their versions, backup copies, stored responses.

Each batch is one short transaction: the rows are locked (``FOR UPDATE``, so a concurrent
edit either waits for the batch or is waited for, and is never overwritten with an older
value), opened with whatever key sealed them, sealed again with the active key (fresh
nonces; phone hash and digest recomputed with the current hash key), and written back.
Batches walk the primary key, so a rotation that stops part-way just runs again: rows
already under the active key are not selected (unless ``every_row``, e.g. after a hash-key
change). Once ``remaining()`` is zero everywhere, the old key can be removed from the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Table, bindparam, func, literal, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.progress import Progress
from services.profile.shared.storage.contact_crypto import KEY_ID_COLUMN, SEALED_COLUMNS, ContactProtector
from services.profile.shared.storage.faults import database_transaction
from services.profile.shared.storage.tables import (
    backup_customers,
    customer_profiles,
    customer_versions,
    idempotency_keys,
)

_KEYS: dict[str, tuple[str, ...]] = {
    "customer_profiles": ("customer_id",),
    "backup_customers": ("backup_id", "customer_id"),
    "customer_versions": ("customer_id", "version"),
    "idempotency_keys": ("scope", "idempotency_key"),
}
_TABLES = (customer_profiles, customer_versions, backup_customers, idempotency_keys)


class RotationReport(msgspec.Struct, frozen=True, rename="camel"):
    active_key_id: str
    customers: int
    backup_rows: int
    stored_responses: int
    versions: int


@dataclass(frozen=True)
class SqlContactKeyRotation:
    engine: AsyncEngine
    protector: ContactProtector
    # Rows re-sealed per transaction.
    batch_size: int

    async def remaining(self, *, every_row: bool = False) -> dict[str, int]:
        """Rows a rotation would re-seal, per table."""
        async with self._transaction() as connection:
            return {
                table.name: int(
                    await connection.scalar(select(func.count()).select_from(table).where(self._due(table, every_row)))
                    or 0
                )
                for table in _TABLES
            }

    async def rotate(self, progress: Progress, *, every_row: bool = False) -> RotationReport:
        counts = {}
        for table in _TABLES:
            counts[table.name] = await self._rotate_table(table, progress, every_row)
        return RotationReport(
            active_key_id=self.protector.active_key_id,
            customers=counts["customer_profiles"],
            backup_rows=counts["backup_customers"],
            stored_responses=counts["idempotency_keys"],
            versions=counts["customer_versions"],
        )

    def _due(self, table: Table, every_row: bool) -> ColumnElement[bool]:
        if table is idempotency_keys:
            sealed = table.c.response_body.is_not(None)
            return sealed if every_row else sealed & table.c.response_key_id.is_distinct_from(self._active)
        return true() if every_row else table.c[KEY_ID_COLUMN].is_distinct_from(self._active)

    @property
    def _active(self) -> str:
        return self.protector.active_key_id

    async def _rotate_table(self, table: Table, progress: Progress, every_row: bool) -> int:
        keys = [table.c[name] for name in _KEYS[table.name]]
        after: tuple[Any, ...] | None = None
        done = 0
        while True:
            async with self._transaction() as connection:
                query = select(table).where(self._due(table, every_row)).order_by(*keys).limit(self.batch_size)
                if after is not None:
                    query = query.where(tuple_(*keys) > tuple_(*(literal(v) for v in after)))
                rows = (await connection.execute(query.with_for_update())).mappings().all()
                if not rows:
                    return done
                await self._reseal(connection, table, rows)
            done += len(rows)
            progress(len(rows))
            after = tuple(rows[-1][name] for name in _KEYS[table.name])

    async def _reseal(self, connection: AsyncConnection, table: Table, rows: Sequence[Any]) -> None:
        names = _KEYS[table.name]
        if table is idempotency_keys:
            values = [self._resealed_response(row) for row in rows]
            written: Sequence[str] = ("response_body", "response_key_id")
        else:
            values = [
                self.protector.seal_personal(row["customer_id"], self.protector.open_personal(row)) for row in rows
            ]
            written = SEALED_COLUMNS
        parameters = [
            {**{f"key_{n}": row[n] for n in names}, **{f"new_{c}": value[c] for c in written}}
            for row, value in zip(rows, values, strict=True)
        ]
        statement = (
            update(table)
            .where(*(table.c[n] == bindparam(f"key_{n}") for n in names))
            .values({c: bindparam(f"new_{c}") for c in written})
        )
        await connection.execute(statement, parameters)

    def _resealed_response(self, row: Any) -> dict[str, Any]:
        body = self.protector.open_response(row["scope"], row["idempotency_key"], bytes(row["response_body"]))
        sealed, key_id = self.protector.seal_response(row["scope"], row["idempotency_key"], body)
        return {"response_body": sealed, "response_key_id": key_id}

    def _transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return database_transaction(self.engine, "key rotation")

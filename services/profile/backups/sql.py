"""Backup points of the ledger (set-based copies) and the lock that serialises restores.

``backup_customers`` copies the profile columns as stored: personal data stays sealed in the
copy and opens there like in the live row (its associated data names the customer and column,
not the table). Whether contact data differs is a comparison of ``contact_digest`` (a keyed
hash of the plaintext), since two seals of one value never compare equal.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import delete, exists, func, insert, literal, select, text, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import DatabaseError
from services.profile.domain.errors import RestoreInProgress
from services.profile.domain.ledger import TRACKED_FIELDS
from services.profile.domain.model import Customer
from services.profile.domain.restore import BackupKind
from services.profile.shared.pagination import TimeKey
from services.profile.shared.ports import BackupPoint
from services.profile.shared.storage.contact_crypto import DIGEST_COLUMN, PERSONAL_FIELDS, ContactProtector
from services.profile.shared.storage.repositories import customer_from_row, keyset_position
from services.profile.shared.storage.tables import backup_customers, backups, customer_profiles

_COPY_TIMEOUT = "10min"
_RESTORE_LOCK_KEY = zlib.crc32(b"profile-ledger-restore")
# The domain compares the decrypted values again (plan_customer_restore); this only preselects rows.
# The content fields as stored: ``contact_digest`` stands for all personal data (contact data and
# tax number); the customer code is compared on its own (older copies hold none).
_COMPARED = (
    DIGEST_COLUMN,
    *(name for name in TRACKED_FIELDS if name not in PERSONAL_FIELDS and name != "customer_code"),
)
_PROFILE_COLUMNS = tuple(customer_profiles.c.keys())


def _point(row: RowMapping) -> BackupPoint:
    return BackupPoint(
        backup_id=row["backup_id"],
        kind=BackupKind(row["kind"]),
        label=row["label"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        customer_count=row["customer_count"],
        deleted_count=row["deleted_count"],
    )


class SqlBackupRepository:
    def __init__(self, connection: AsyncConnection, protector: ContactProtector) -> None:
        self._connection = connection
        self._protector = protector

    async def take(
        self, backup_id: str, kind: BackupKind, label: str | None, created_by: str, now: datetime
    ) -> BackupPoint:
        # The copy of a large ledger may outlast the pool's per-statement timeout meant for requests.
        await self._connection.execute(text(f"SET LOCAL statement_timeout = '{_COPY_TIMEOUT}'"))
        await self._connection.execute(
            insert(backups).values(
                backup_id=backup_id,
                kind=kind.value,
                label=label,
                created_by=created_by,
                created_at=now,
                customer_count=0,
                deleted_count=0,
            )
        )
        # One statement, so one snapshot of the ledger, whatever commits meanwhile.
        copied = (
            insert(backup_customers)
            .from_select(
                ["backup_id", *_PROFILE_COLUMNS],
                select(literal(backup_id), *(customer_profiles.c[name] for name in _PROFILE_COLUMNS)),
            )
            .returning(backup_customers.c.deleted_at)
            .cte("copied")
        )
        counts = (
            await self._connection.execute(select(func.count(), func.count(copied.c.deleted_at)).select_from(copied))
        ).one()
        await self._connection.execute(
            update(backups)
            .where(backups.c.backup_id == backup_id)
            .values(customer_count=counts[0], deleted_count=counts[1])
        )
        return BackupPoint(backup_id, kind, label, created_by, now, customer_count=counts[0], deleted_count=counts[1])

    async def get(self, backup_id: str) -> BackupPoint | None:
        row = (await self._connection.execute(select(backups).where(backups.c.backup_id == backup_id))).mappings()
        first = row.first()
        return None if first is None else _point(first)

    async def list_page(self, after: TimeKey | None, limit: int) -> Sequence[BackupPoint]:
        b = backups.c
        query = select(backups)
        if after is not None:
            query = query.where(tuple_(b.created_at, b.backup_id) < keyset_position(after))
        query = query.order_by(b.created_at.desc(), b.backup_id.desc()).limit(limit)
        return [_point(row) for row in (await self._connection.execute(query)).mappings()]

    async def latest(self, kind: BackupKind, since: datetime) -> BackupPoint | None:
        b = backups.c
        query = (
            select(backups).where(b.kind == kind.value, b.created_at >= since).order_by(b.created_at.desc()).limit(1)
        )
        row = (await self._connection.execute(query)).mappings().first()
        return None if row is None else _point(row)

    async def expired(self, before: datetime, keep_newest: int) -> Sequence[BackupPoint]:
        b = backups.c
        newest = select(b.backup_id).order_by(b.created_at.desc()).limit(keep_newest)
        query = select(backups).where(b.created_at < before, b.backup_id.not_in(newest)).order_by(b.created_at)
        return [_point(row) for row in (await self._connection.execute(query)).mappings()]

    async def delete(self, backup_id: str) -> None:
        await self._connection.execute(delete(backups).where(backups.c.backup_id == backup_id))

    async def contains(self, backup_id: str, customer_id: str) -> bool:
        b = backup_customers.c
        query = select(exists().where(b.backup_id == backup_id, b.customer_id == customer_id))
        return bool(await self._connection.scalar(query))

    async def differing_ids(
        self, backup_id: str, customer_id: str | None, after_id: str | None, limit: int
    ) -> Sequence[str]:
        b, c = backup_customers.c, customer_profiles.c
        # Copies taken before codes existed hold none: their code is the customer id.
        snapshot_code = func.coalesce(b.customer_code, b.customer_id)
        snapshot = tuple_(*(b[name] for name in _COMPARED), snapshot_code, b.deleted_at.is_(None))
        current = tuple_(*(c[name] for name in _COMPARED), c.customer_code, c.deleted_at.is_(None))
        query = (
            select(b.customer_id)
            .select_from(backup_customers.outerjoin(customer_profiles, c.customer_id == b.customer_id))
            .where(b.backup_id == backup_id, c.customer_id.is_(None) | snapshot.is_distinct_from(current))
        )
        if customer_id is not None:
            query = query.where(b.customer_id == customer_id)
        if after_id is not None:
            query = query.where(b.customer_id > after_id)
        query = query.order_by(b.customer_id).limit(limit)
        return list((await self._connection.execute(query)).scalars())

    async def snapshots(self, backup_id: str, customer_ids: Sequence[str]) -> dict[str, Customer]:
        if not customer_ids:
            return {}
        b = backup_customers.c
        query = select(backup_customers).where(b.backup_id == backup_id, b.customer_id.in_(list(customer_ids)))
        rows = (await self._connection.execute(query)).mappings()
        return {row["customer_id"]: customer_from_row(row, self._protector) for row in rows}

    async def live_not_in_backup(self, backup_id: str, after_id: str | None, limit: int) -> Sequence[str]:
        b, c = backup_customers.c, customer_profiles.c
        query = select(c.customer_id).where(
            c.deleted_at.is_(None), ~exists().where(b.backup_id == backup_id, b.customer_id == c.customer_id)
        )
        if after_id is not None:
            query = query.where(c.customer_id > after_id)
        query = query.order_by(c.customer_id).limit(limit)
        return list((await self._connection.execute(query)).scalars())


class PgRestoreLock:
    """One restore at a time: a session advisory lock, released by the server if the holder dies."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        try:
            connection = await self._engine.connect()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from exc
        try:
            acquired = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": _RESTORE_LOCK_KEY})
            await connection.commit()
            if not acquired:
                raise RestoreInProgress("another restore is running; try again when it has finished")
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _RESTORE_LOCK_KEY})
                await connection.commit()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"restore lock: {type(getattr(exc, 'orig', None) or exc).__name__}") from exc
        finally:
            await connection.close()

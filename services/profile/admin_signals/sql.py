"""``profile.admin_signals`` (SQL): the failed and refused updates the admins have not yet been told of.

The operation log's trigger (migration profile_0006) writes a row with every ``UPDATE_FAILED`` and
``UPDATE_REFUSED`` entry; the sync-connector reads them (oldest first) and, once counted, has them
removed. This module is the only Python code with SQL on the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.admin_signals import AdminSignal
from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import DatabaseError

_PENDING = text("""
    SELECT id, kind, code, application_id, customer_id, trace_id, occurred_at
    FROM profile.admin_signals ORDER BY id LIMIT :limit
""")
_NOTED = text("DELETE FROM profile.admin_signals WHERE id = ANY(CAST(:ids AS bigint[]))")


class SqlAdminSignals:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def pending(self, limit: int) -> list[AdminSignal]:
        try:
            async with self._engine.connect() as connection:
                rows = (await connection.execute(_PENDING, {"limit": limit})).mappings().all()
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from exc
        return [AdminSignal(**row) for row in rows]

    async def noted(self, ids: Sequence[int]) -> int:
        try:
            async with self._engine.begin() as connection:
                result = await connection.execute(_NOTED, {"ids": list(ids)})
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"database unavailable: {type(exc).__name__}") from exc
        return int(result.rowcount)

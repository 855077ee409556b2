"""What a lost or refused database looks like to the adapters (turned into ``DatabaseError``, 503)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.errors import DatabaseError

# SQLAlchemy wraps driver errors of a statement in DBAPIError, but not every error of opening a
# connection: asyncpg's own (e.g. "database is not accepting connections") can surface from the
# pool as they are.
DATABASE_FAULTS: tuple[type[BaseException], ...] = (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@asynccontextmanager
async def database_transaction(engine: AsyncEngine, what: str) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` whose faults become DatabaseError (503 on the API, exit 1 in a command)."""
    try:
        async with engine.begin() as connection:
            yield connection
    except DATABASE_FAULTS as exc:
        raise DatabaseError(f"{what}: {type(getattr(exc, 'orig', None) or exc).__name__}") from exc

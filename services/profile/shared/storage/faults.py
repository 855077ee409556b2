"""A lost or refused database, in the adapters, becomes ``DatabaseError`` (503).

What counts as one is the shared kit's policy (``libs.kit.db_faults.DATABASE_ERRORS``): the driver's
and the socket's errors; SQLAlchemy's own errors besides those are bugs (500).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import DatabaseError


@asynccontextmanager
async def database_transaction(engine: AsyncEngine, what: str) -> AsyncIterator[AsyncConnection]:
    """``engine.begin()`` whose faults become DatabaseError (503 on the API, exit 1 in a command)."""
    try:
        async with engine.begin() as connection:
            yield connection
    except DATABASE_ERRORS as exc:
        raise DatabaseError(f"{what}: {type(getattr(exc, 'orig', None) or exc).__name__}") from exc

"""What a lost or refused database looks like to the connector: an error to wait out and retry, never fatal."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

# SQLAlchemy wraps the driver's errors of a statement, but not every error of opening a connection:
# asyncpg's own (CannotConnectNowError while PostgreSQL recovers after a restart, InterfaceError on a
# closed connection) come out of the pool as they are. A loop that catches less dies on them.
DATABASE_FAULTS: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

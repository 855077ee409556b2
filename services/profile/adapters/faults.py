"""What a lost or refused database looks like to the adapters (turned into ``DatabaseError``, 503)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

# SQLAlchemy wraps driver errors of a statement in DBAPIError, but not every error of opening a
# connection: asyncpg's own (e.g. "database is not accepting connections") can surface from the
# pool as they are.
DATABASE_FAULTS: tuple[type[BaseException], ...] = (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

"""The database-fault policy (the only one): what a lost or refused database looks like, and which faults
waiting can clear.

Two sets, one nested in the other:

- ``DATABASE_ERRORS``: what the database, or the way to it, answered: the driver's errors (SQLAlchemy
  wraps a statement's in ``DBAPIError``; asyncpg's own come unwrapped out of a pool or a raw
  connection) and the socket's (``OSError``, ``TimeoutError`` included). A request that meets one
  answers "database unavailable" (the profile's DatabaseError, 503); a watcher on a raw asyncpg
  connection (the relay, the backlog gauges) reconnects and tries again.
  A pool checkout that timed out counts too: every connection was busy (overload), a retryable 503.
- ``DATABASE_FAULTS``: those plus SQLAlchemy's own errors of connection state (a transaction
  invalidated by a lost connection). Loops that must outlive the
  database (retry schedulers, publishers, the consumer) catch these. A request does not: SQLAlchemy's
  errors outside ``DATABASE_ERRORS`` are ours to fix (500), not the database's.

Most faults are worth waiting out: a lost connection, a server restarting, a statement timeout, a
deadlock. A few are not: the database refusing the data itself (SQLSTATE class 22, data exception:
a NUL in text, a value out of range; class 23, integrity constraint violation) or the driver refusing
a parameter before sending it. The same statement fails the same way on every try, so a caller that
retries "until it clears" must not wait for those (``is_transient_database_fault``).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLAlchemy wraps the driver's errors of a statement, but not every error of opening a connection:
# asyncpg's own (CannotConnectNowError while PostgreSQL recovers after a restart, InterfaceError on a
# closed connection) come out of the pool as they are. A caller that catches less dies on them.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    OSError,  # TimeoutError is one
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # No pooled connection within the pool's timeout: the database is out of reach for now (every
    # connection busy under overload), a retryable 503, not a bug of ours (500, "needs an operator").
    PoolTimeout,
)
DATABASE_FAULTS: tuple[type[Exception], ...] = (SQLAlchemyError, *DATABASE_ERRORS)

# SQLSTATE classes of a statement that fails the same way whatever the database's health.
_REFUSED_DATA_CLASSES = frozenset({"22", "23"})
_CHAIN_LIMIT = 8


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (SQLAlchemy's wrapper, the adapted DB-API error or asyncpg's)."""
    for error in _chain(exc):
        code = getattr(error, "sqlstate", None)
        if isinstance(code, str) and code:
            return code
    return None


def refuses_the_data(exc: BaseException) -> bool:
    """The database (or the driver, before sending) refused what the statement carries: retrying the
    same statement cannot help."""
    if (code := sqlstate_of(exc)) is not None:
        return code[:2] in _REFUSED_DATA_CLASSES
    # asyncpg's DataError is raised while encoding a parameter (no SQLSTATE: nothing reached the server).
    return any(isinstance(error, asyncpg.DataError) for error in _chain(exc))


def is_transient_database_fault(exc: BaseException) -> bool:
    """A database fault that waiting can clear (everything in ``DATABASE_FAULTS`` but refused data)."""
    return isinstance(exc, DATABASE_FAULTS) and not refuses_the_data(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    """The error, what it wraps (SQLAlchemy's ``orig``) and its explicit causes (``raise ... from``), nearest
    first. Not ``__context__``: an error raised while handling another (a connection lost during the
    rollback of refused data) is not that other error."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < _CHAIN_LIMIT:
        error = pending.pop(0)
        if error is None or any(error is known for known in seen):
            continue
        seen.append(error)
        orig = getattr(error, "orig", None)
        pending.extend([orig if isinstance(orig, BaseException) else None, error.__cause__])
    return seen
